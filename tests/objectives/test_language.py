"""The Objective language by example: the deployment-guide rule, syntax, attributes, functions,
branches, the named form and rule files (docs/objective-language.md)."""

from __future__ import annotations

import pytest

from meridian.errors import BadInput
from meridian.objectives import (DEFAULT_GROUPS, FileFacts, Objective, ObjectiveError, Slo,
                                 known_slos, parse, parse_named, split_rules)

GUIDE_RULE = """IF FNMATCH("./hs-mount/project/*/flame/*.clip",PATH)
THEN {SLO('place-on-local-volumes')}"""
PLACE = (Slo("place-on-local-volumes"),)
DAY = 86400.0


def matches(rule: str | Objective, path: str = "./f", **facts: object) -> bool:
    objective = parse(rule) if isinstance(rule, str) else rule
    return objective.evaluate(FileFacts(path, **facts)).matched  # type: ignore[arg-type]


# -- the deployment guide's rule, verbatim ---------------------------------------------------

@pytest.mark.parametrize("path, expected", [
    ("./hs-mount/project/sh010/flame/sh010.clip", True),
    ("./hs-mount/project/a/b/c/flame/x.clip", True),          # the first * spans levels
    ("./hs-mount/project/sh010/flame/sub/x.clip", True),      # so does the second
    ("./hs-mount/project/sh010/flame/renders/f.0001.exr", False),
    ("./hs-mount/project/sh010/comp/sh010.clip", False),      # no /flame/ folder
    ("./hs-mount/project/flame/x.clip", False),               # '/*/' needs a folder between
    ("./hs-mount/project/sh010/flame/sh010.CLIP", False),     # matching is case-sensitive
    ("./other/project/sh010/flame/sh010.clip", False),        # anchored at the root
    ("./hs-mount/project/sh010/flame/sh010.clip.bak", False),  # anchored at the end
])
def test_the_deployment_guide_rule_parses_and_matches_as_the_spec_says(path: str,
                                                                        expected: bool) -> None:
    objective = parse(GUIDE_RULE)
    evaluation = objective.evaluate(FileFacts(path))
    assert evaluation.matched is expected
    assert evaluation.slos == (PLACE if expected else ())
    assert objective.text == GUIDE_RULE
    assert objective.slo_names() == {"place-on-local-volumes"}
    assert not objective.uses_time()


def test_why_names_the_call_and_the_path() -> None:
    evaluation = parse(GUIDE_RULE).evaluate(FileFacts("./hs-mount/project/sh010/flame/sh010.clip"))
    assert evaluation.why == ('FNMATCH("./hs-mount/project/*/flame/*.clip", PATH) is true: '
                              'PATH is "./hs-mount/project/sh010/flame/sh010.clip"')
    miss = parse(GUIDE_RULE).evaluate(FileFacts("./x.clip"))
    assert miss.why.startswith('FNMATCH("./hs-mount/project/*/flame/*.clip", PATH) is false')


@pytest.mark.parametrize("pattern", ["./proj/*.exr", "/proj/*.exr", "proj/*.exr", ".//proj/*.exr"])
def test_a_leading_dot_slash_or_slash_in_the_pattern_means_the_root(pattern: str) -> None:
    rule = f'IF FNMATCH("{pattern}", PATH) THEN {{SLO("keep-online")}}'
    assert matches(rule, "./proj/a/b.exr")
    assert not matches(rule, "./other/proj/b.exr")


def test_double_star_is_a_synonym_of_star_and_star_matches_at_any_depth() -> None:
    for pattern in ("*/archive/*", "**/archive/**"):
        rule = f"IF FNMATCH('{pattern}', PATH) THEN {{SLO('exclude-from-local-volumes')}}"
        assert matches(rule, "./show/seq/archive/old.mov")
        assert matches(rule, "./show/archive/x")
        assert not matches(rule, "./archive/x")  # '*/' needs a folder before archive
        assert not matches(rule, "./show/archives/x")


def test_fnmatch_on_other_subjects_is_not_root_normalised() -> None:
    assert matches("IF FNMATCH('sh0?0.*', NAME) THEN {}", "./a/sh010.clip")
    assert not matches("IF FNMATCH('./sh010.clip', NAME) THEN {}", "./sh010.clip")
    assert matches("IF FNMATCH('[!x]*.exr', NAME) THEN {}", "./a/b.exr")
    assert not matches("IF FNMATCH('[!x]*.exr', NAME) THEN {}", "./a/xb.exr")


# -- syntax ----------------------------------------------------------------------------------

def test_keywords_attributes_and_functions_are_case_insensitive() -> None:
    rule = 'if fnmatch("./a/*", path) and Not Is_Open then {slo("place-on-local-volumes")}'
    assert parse(rule).evaluate(FileFacts("./a/b")).slos == PLACE
    assert not matches(rule, "./a/b", is_open=True)


def test_slo_names_are_case_insensitive_and_aliases_resolve() -> None:
    objective = parse("{SLO('PLACE-ON-Local-Volumes'), SLO(\"confine-to-site\")}")
    assert objective.evaluate(FileFacts("./f")).slos == (
        Slo("place-on-local-volumes"), Slo("confine-to-local-volumes"))
    assert objective.slo_names() == {"place-on-local-volumes", "confine-to-local-volumes"}


def test_both_quote_styles_and_backslash_escapes() -> None:
    assert matches("""IF NAME == 'it\\'s "x"' THEN {}""", """./it's "x\"""")
    assert matches('''IF NAME == "it's \\"x\\"" THEN {}''', """./it's "x\"""")
    assert matches('IF NAME == "a\\\\b" THEN {}', "./a\\b")
    # any other backslash stays, so regular expressions read naturally
    assert matches('IF REGEX("sh\\d+\\.clip", NAME) THEN {}', "./sh010.clip")
    assert not matches('IF REGEX("sh\\d+\\.clip", NAME) THEN {}', "./shx10.clip")


def test_whitespace_and_newlines_are_free() -> None:
    rule = "\n\tIF\n  SIZE\n>\n1KB\r\n  AND IS_FILE   THEN\n{\n SLO ( 'keep-online' )\n}\n"
    assert matches(rule, size=2000)
    assert not matches(rule, size=1000)
    assert matches("IF(SIZE>1KB)THEN{SLO('keep-online')}", size=2000)


@pytest.mark.parametrize("value, size_in_bytes", [
    ("33KB", 33 * 1024), ("33*KB", 33 * 1024), ("4*KBYTES", 4096), ("4 KBYTES", 4096),
    ("2MB", 2 * 1024**2), ("1.5GB", int(1.5 * 1024**3)), ("1TB", 1024**4), ("7BYTES", 7),
    ("3 * MBYTES", 3 * 1024**2), ("2GBYTES", 2 * 1024**3), ("1TBYTES", 1024**4), ("9", 9),
    ("1byte", 1), ("2kb", 2048),
])
def test_size_units_attached_or_multiplied(value: str, size_in_bytes: int) -> None:
    rule = f"IF SIZE == {value} THEN {{}}"
    assert matches(rule, size=size_in_bytes)
    assert not matches(rule, size=size_in_bytes + 1)


@pytest.mark.parametrize("value, seconds", [
    ("2DAYS", 2 * DAY), ("30*DAYS", 30 * DAY), ("1DAY", DAY), ("90SECONDS", 90), ("1second", 1),
    ("5MINUTES", 300), ("1minute", 60), ("3HOURS", 10800), ("1 HOUR", 3600), ("2WEEKS", 14 * DAY),
    ("1week", 7 * DAY), ("0.5DAYS", DAY / 2), ("120", 120),
])
def test_time_units_attached_or_multiplied(value: str, seconds: float) -> None:
    rule = f"IF MODIFY_AGE >= {value} THEN {{}}"
    now = 1_000_000_000.0
    assert matches(rule, now=now, mtime=now - seconds)
    assert not matches(rule, now=now, mtime=now - seconds + 1)


@pytest.mark.parametrize("operator, below, equal, above", [
    ("<", True, False, False), ("<=", True, True, False), (">", False, False, True),
    (">=", False, True, True), ("==", False, True, False), ("=", False, True, False),
    ("!=", True, False, True),
])
def test_comparison_operators(operator: str, below: bool, equal: bool, above: bool) -> None:
    rule = parse(f"IF SIZE {operator} 1MB THEN {{}}")
    assert [matches(rule, size=s) for s in (1024**2 - 1, 1024**2, 1024**2 + 1)] == [
        below, equal, above]


def test_a_literal_may_come_first() -> None:
    assert matches("IF 2DAYS < MODIFY_AGE THEN {}", now=3 * DAY)
    assert not matches("IF 2DAYS < MODIFY_AGE THEN {}", now=DAY)
    assert matches("IF 1000 == OWNER THEN {}", uid=1000)
    assert matches("IF 999 < OWNER THEN {}", uid=1000)


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    rule = parse("IF IS_OPEN OR IS_SYMLINK AND NOT IS_DIRECTORY THEN {}")  # a OR (b AND (NOT c))
    assert matches(rule, is_open=True, kind="directory")
    assert matches(rule, kind="symlink")
    assert not matches(rule, kind="directory")
    grouped = parse("IF (IS_OPEN OR IS_SYMLINK) AND NOT IS_FILE THEN {}")
    assert not matches(grouped, is_open=True, kind="file")
    assert matches(grouped, is_open=True, kind="directory")
    assert matches("IF NOT IS_FILE && !IS_OPEN || IS_OPEN THEN {}", kind="directory")
    assert matches("IF ! ! IS_FILE THEN {}")
    assert parse("IF NOT SIZE > 5 THEN {}").canonical_text() == "IF NOT (SIZE > 5) THEN {}"


def test_else_if_and_else_choose_the_first_branch_that_holds() -> None:
    rule = parse("""IF EXTENSION == "exr" THEN {SLO('prefetch-sequence')}
                    ELSE IF SIZE > 1GB THEN {SLO('exclude-from-local-volumes')}
                    ELSE IF IS_OPEN THEN {}
                    ELSE {SLO('keep-online')}""")
    assert rule.evaluate(FileFacts("./a.EXR", size=2 * 1024**3)).slos == (Slo("prefetch-sequence"),)
    big = rule.evaluate(FileFacts("./a.mov", size=2 * 1024**3))
    assert big.slos == (Slo("exclude-from-local-volumes"),)
    assert big.why.startswith("ELSE IF SIZE > 1GB is true")
    opened = rule.evaluate(FileFacts("./a.mov", is_open=True))
    assert opened.matched and opened.slos == ()
    other = rule.evaluate(FileFacts("./a.mov"))
    assert other.slos == (Slo("keep-online"),) and other.why.startswith("ELSE: ")
    assert rule.slo_names() == {"prefetch-sequence", "exclude-from-local-volumes", "keep-online"}


def test_an_if_without_else_that_fails_does_not_match() -> None:
    evaluation = parse("IF IS_OPEN THEN {SLO('keep-online')}").evaluate(FileFacts("./f"))
    assert evaluation == evaluation.__class__(False, (), "IS_OPEN is false")


def test_bare_actions_always_apply_and_empty_braces_give_no_slo() -> None:
    always = parse("{SLO('keep-online'), SLO('prefetch-sequence')}").evaluate(FileFacts("./f"))
    assert always.matched and always.slos == (Slo("keep-online"), Slo("prefetch-sequence"))
    nothing = parse("{}").evaluate(FileFacts("./f"))
    assert nothing.matched and nothing.slos == ()
    assert parse("IF IS_FILE THEN {}").evaluate(FileFacts("./f")).slos == ()


def test_duplicate_slos_in_a_branch_collapse() -> None:
    objective = parse("{SLO('confine-to-site'), SLO('confine-to-local-volumes'), SLO('keep-online')}")
    assert objective.evaluate(FileFacts("./f")).slos == (
        Slo("confine-to-local-volumes"), Slo("keep-online"))


def test_true_and_false_literals() -> None:
    assert matches("IF TRUE THEN {}")
    assert not matches("IF FALSE THEN {}")
    assert matches("IF IS_OPEN == FALSE THEN {}")
    assert matches("IF FNMATCH('*', NAME) != false THEN {}")


# -- attributes ------------------------------------------------------------------------------

def test_path_name_and_extension() -> None:
    assert matches("IF PATH == './a/b.TAR.GZ' THEN {}", "./a/b.TAR.GZ")
    assert matches("IF NAME == 'b.TAR.GZ' THEN {}", "./a/b.TAR.GZ")
    assert matches("IF EXTENSION == 'gz' THEN {}", "./a/b.TAR.GZ")
    assert matches("IF EXTENSION == '' THEN {}", "./a/.bashrc")
    assert FileFacts("./").name == "" and FileFacts("./").extension == ""
    assert FileFacts("./a/sh.0001.exr").extension == "exr"


def test_ages_are_seconds_since_each_event() -> None:
    now = 10 * DAY
    kw: dict[str, object] = dict(now=now, mtime=now - 3 * DAY, atime=now - DAY,
                                 ctime=now - 5 * DAY)
    assert matches("IF MODIFY_AGE > 2DAYS AND MODIFY_AGE < 4DAYS THEN {}", **kw)
    assert matches("IF ACCESS_AGE == 1DAY THEN {}", **kw)
    assert matches("IF CREATE_AGE == 5 DAYS THEN {}", **kw)
    assert matches("IF LAST_USE_AGE == 1DAY THEN {}", **kw)  # max(atime, mtime)
    assert matches("IF LAST_USE_AGE == 2DAYS THEN {}", **kw, last_use=now - 2 * DAY)
    assert parse("IF LAST_USE_AGE > 1 THEN {}").uses_time()
    assert parse("IF IS_FILE THEN {} ELSE IF CREATE_AGE > 1 THEN {}").uses_time()
    assert not parse("IF SIZE > 1 THEN {}").uses_time()


def test_owner_and_group_compare_to_ids_or_names() -> None:
    assert matches("IF OWNER == 1000 THEN {}", uid=1000)
    assert matches("IF OWNER == 'alice' THEN {}", uid=1000, owner="alice")
    assert matches("IF OWNER == '1000' THEN {}", uid=1000)
    assert not matches("IF OWNER == 'alice' THEN {}", uid=1000)
    assert matches("IF OWNER != 'alice' THEN {}", uid=1000, owner="bob")
    assert matches("IF GROUP == 'vfx' AND GROUP >= 500 THEN {}", gid=500, group="vfx")
    assert not matches("IF GROUP == 'vfx' THEN {}", uid=500, owner="vfx")


def test_kind_open_and_origin_attributes() -> None:
    assert matches("IF IS_FILE THEN {}") and not matches("IF IS_FILE THEN {}", kind="symlink")
    assert matches("IF IS_DIRECTORY THEN {}", kind="directory")
    assert matches("IF IS_SYMLINK THEN {}", kind="symlink")
    assert matches("IF IS_OPEN THEN {}", is_open=True)
    here = dict(origin_site="paris", this_site="paris")
    assert matches("IF DATA_ORIGIN_LOCAL AND NOT DATA_ORIGIN_REMOTE THEN {}", **here)
    assert matches("IF DATA_ORIGIN_REMOTE THEN {}", origin_site="london", this_site="paris")
    assert matches("IF ORIGIN_SITE == 'london' THEN {}", origin_site="london")


# -- functions -------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["clip", ".clip"])
def test_match_extension_accepts_the_extension_with_or_without_its_dot(ext: str) -> None:
    rule = f"IF MATCH_EXTENSION('{ext}', NAME) THEN {{}}"
    assert matches(rule, "./a/sh010.clip")
    assert matches(rule, "./a/sh010.v2.clip")
    assert not matches(rule, "./a/sh010.CLIP")        # case-sensitive
    assert not matches(rule, "./a/sh010clip")
    assert not matches(rule, "./a/.clip")             # a hidden file has no extension
    assert not matches(rule, "./a/sh010.clip.bak")


def test_match_extension_with_an_inner_dot() -> None:
    assert matches("IF MATCH_EXTENSION('tar.gz', NAME) THEN {}", "./a.tar.gz")
    assert not matches("IF MATCH_EXTENSION('tar.gz', NAME) THEN {}", "./a.gz")


def test_regex_is_a_full_match_and_case_sensitive() -> None:
    rule = parse("IF REGEX('sh[0-9]{3}_v[0-9]+\\.exr', NAME) THEN {}")
    assert matches(rule, "./x/sh010_v12.exr")
    assert not matches(rule, "./x/sh010_v12.exr.tmp")
    assert not matches(rule, "./x/SH010_v12.exr")
    assert matches("IF REGEX('\\./shots/.*', PATH) THEN {}", "./shots/a/b")


def test_functions_accept_literal_subjects() -> None:
    assert matches("IF FNMATCH('a*', 'abc') THEN {}")
    assert parse("IF FNMATCH('a*', 'abc') THEN {}").evaluate(FileFacts("./f")).why == (
        'FNMATCH("a*", "abc") is true')


# -- the named form, rule files, SLO names ---------------------------------------------------

@pytest.mark.parametrize("when", [
    "EXTENSION == 'exr'", "EXTENSION == 'exr'?TRUE", "EXTENSION == 'exr' ?ALWAYS",
    "EXTENSION == 'exr' ? true", "(EXTENSION == 'exr')?always",
])
def test_parse_named_means_if_cond_then_that_slo(when: str) -> None:
    objective = parse_named("prefetch-sequence", when)
    assert objective.evaluate(FileFacts("./s.0001.exr")).slos == (Slo("prefetch-sequence"),)
    assert not objective.evaluate(FileFacts("./s.mov")).matched
    assert objective.text == f"IF {when} THEN {{SLO('prefetch-sequence')}}"
    assert parse(objective.text) == objective


def test_parse_named_refuses_unknown_slos_and_bad_conditions_with_positions() -> None:
    with pytest.raises(ObjectiveError, match="unknown SLO 'place'") as unknown:
        parse_named("place", "IS_FILE")
    assert (unknown.value.line, unknown.value.column) == (1, 1)
    with pytest.raises(ObjectiveError) as bad:
        parse_named("keep-online", "IS_FILE AND\n  SIZ > 3")
    assert (bad.value.line, bad.value.column) == (2, 3)
    with pytest.raises(ObjectiveError, match="TRUE or ALWAYS"):
        parse_named("keep-online", "IS_FILE ?SOMETIMES")
    with pytest.raises(ObjectiveError, match="end of the condition"):
        parse_named("keep-online", "IS_FILE ?TRUE AND IS_OPEN")
    with pytest.raises(ObjectiveError, match="empty condition"):
        parse_named("keep-online", "  ")


def test_split_rules_separates_on_blank_lines() -> None:
    text = ("IF IS_FILE\nTHEN {SLO('keep-online')}\n\n\n  \t\n{SLO('prefetch-sequence')}\r\n"
            "\r\nIF IS_OPEN THEN {}\n")
    assert split_rules(text) == ["IF IS_FILE\nTHEN {SLO('keep-online')}",
                                 "{SLO('prefetch-sequence')}", "IF IS_OPEN THEN {}"]
    assert split_rules("\n \n") == []
    assert all(isinstance(parse(rule), Objective) for rule in split_rules(text))


def test_known_slos_follow_the_volume_groups() -> None:
    assert known_slos() == {
        "place-on-local-volumes", "confine-to-local-volumes", "exclude-from-local-volumes",
        "place-on-shared-object-volumes", "confine-to-shared-object-volumes",
        "exclude-from-shared-object-volumes", "keep-online", "do-not-move", "prefetch-sequence",
        "confine-to-site", *(f"{kind}-1-{span}" for kind in ("versioning", "undelete")
                             for span in ("hour", "day", "week", "month"))}
    groups = (*DEFAULT_GROUPS, "fast-nvme")
    assert {"place-on-fast-nvme", "confine-to-fast-nvme", "exclude-from-fast-nvme"} <= known_slos(groups)
    assert parse("{SLO('place-on-fast-nvme')}", groups).slo_names() == {"place-on-fast-nvme"}
    with pytest.raises(ObjectiveError, match="unknown SLO 'place-on-fast-nvme'"):
        parse("{SLO('place-on-fast-nvme')}")


def test_canonical_text_round_trips() -> None:
    rule = parse("if (size>1kb or is_open) and not fnmatch('a*', name) then {slo('keep-online')}"
                 " else if owner = 'x' ?true then {} else {slo('prefetch-sequence')}")
    assert rule.canonical_text() == (
        "IF (SIZE > 1kb OR IS_OPEN) AND NOT FNMATCH(\"a*\", NAME) THEN {SLO('keep-online')} "
        "ELSE IF OWNER = \"x\"?TRUE THEN {} ELSE {SLO('prefetch-sequence')}")
    assert parse(rule.canonical_text()) == rule


def test_objective_error_is_bad_input() -> None:
    with pytest.raises(BadInput):
        parse("IF")
