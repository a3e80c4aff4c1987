"""Problem builders: they call formulation functions only (PowerModels-style)."""
