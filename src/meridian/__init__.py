"""Meridian: one file tree at every site of a studio, content moved through one S3 bucket.

Packages, in import order (each imports only from the ones below it):

    cli · mount                         adapters
    site                                composition root
    mover                               services
    meta · content · objects            stores
    errors                              the exception tree, shared by all
"""

__version__ = "0.1.0"
