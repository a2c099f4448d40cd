"""CLIP scoring, and the project's own tiny CLIP model for offline tests and the demo."""
