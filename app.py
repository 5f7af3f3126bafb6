"""The labelling app: ``streamlit run app.py`` (library folder from ``ASPL_DB``, default data/library).

A thin router over ``app_pages/``; heavy objects come from ``st.cache_resource``
(see :mod:`app_pages.common`).
"""
import streamlit as st

from app_pages import common

st.set_page_config(page_title="ASPL face labelling", page_icon=":material/face:", layout="wide")

PAGES = [
    st.Page("app_pages/annotate.py", title="Annotate", icon=":material/label:", default=True),
    st.Page("app_pages/review.py", title="Review", icon=":material/fact_check:"),
    st.Page("app_pages/people.py", title="People", icon=":material/groups:"),
    st.Page("app_pages/import_page.py", title="Import", icon=":material/upload:", url_path="import"),
    st.Page("app_pages/admin.py", title="Admin", icon=":material/admin_panel_settings:"),
]

nav = st.navigation(PAGES)
common.annotator_input()
common.sidebar_stats()
nav.run()
common.run_marker(nav.title)
