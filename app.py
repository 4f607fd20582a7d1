"""taskaffinity dashboard entry point: `streamlit run app.py`.

Pages live in pages/ and only render what core computes.
"""
import streamlit as st

st.set_page_config(page_title="taskaffinity", layout="wide")
st.title("taskaffinity")
st.write("Which tasks should be trained together? The dashboard pages are being built.")
