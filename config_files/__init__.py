"""Configuration files: reading a configuration folder or file of YAML into the models.

An adapter around the pure core: the reading, the YAML parsing (with line numbers for every
problem) and the schema checks live here; the semantic rules stay in
`domain.config_validation`, so that `domain/` does no I/O.
"""

from config_files.loader import load_and_validate, load_configuration

__all__ = ["load_and_validate", "load_configuration"]
