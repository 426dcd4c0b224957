"""Tables and plots, computed from evaluation JSON files only."""
