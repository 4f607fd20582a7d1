"""Streamlit helpers shared by the dashboard pages (state, figures, exports). Computation lives in core."""
