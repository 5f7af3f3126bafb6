"""The labelling app: ``streamlit run app.py`` (library folder from ``ASPL_DB``, default data/library).

A thin router over ``app_pages/``: who may see which page follows the account's role (annotator:
Annotate; reviewer: + Review, People; admin: + Import, Admin). Heavy objects come from
``st.cache_resource`` (see :mod:`app_pages.common`).
"""
import streamlit as st

from app_pages import common

st.set_page_config(page_title="ASPL face labelling", page_icon=":material/face:", layout="wide")

PAGES = [  # (page, the role it needs)
    (st.Page("app_pages/annotate.py", title="Annotate", icon=":material/label:", default=True), "annotator"),
    (st.Page("app_pages/review.py", title="Review", icon=":material/fact_check:"), "reviewer"),
    (st.Page("app_pages/people.py", title="People", icon=":material/groups:"), "reviewer"),
    (st.Page("app_pages/import_page.py", title="Import", icon=":material/upload:", url_path="import"), "admin"),
    (st.Page("app_pages/admin.py", title="Admin", icon=":material/admin_panel_settings:"), "admin"),
]

user = common.current_user()
if user is None:
    nav = st.navigation([st.Page("app_pages/login.py", title="Log in", icon=":material/login:", default=True)])
else:
    svc = common.service()
    nav = st.navigation([p for p, role in PAGES if svc.allows(user["role"], role)])
    common.sidebar_account(user)
    common.sidebar_stats()
common.sync_cookie()
nav.run()
common.run_marker(nav.title)
