"""analysis_lib: the statistical library behind the rescue-stenting compendium."""

__version__ = "0.1.0"
