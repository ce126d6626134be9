"""Radiomics with IBSI feature tags: the IBSI 1 definitions in vectorised numpy (``extract``, ``morphology``,
``intensity``, ``texture_*``), pyradiomics for the ``clinical`` configuration (``clinical``), named configurations
(``configs``), the digital phantom check (``ibsi_check``) and the Dask cohort batch (``batch``). See docs/radiomics.md.

Submodules are imported where used, so that importing the package stays cheap for the command line.
"""

__all__: list[str] = []
