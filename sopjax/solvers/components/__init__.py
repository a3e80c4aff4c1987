"""Model components shared by problems: the SOP model, radiality, data-derived bounds."""
