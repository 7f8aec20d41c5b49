"""hotfolder: a shared folder that works as an AI image-editing queue."""

__version__ = "0.1.0"
