"""analysis_lib: the statistical library behind the rescue-stenting compendium."""

from .effects import weighted_effect

__version__ = "0.1.0"
__all__ = ["weighted_effect"]
