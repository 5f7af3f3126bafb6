"""Log in (or, on a new library, create the first admin with the setup token from the server's log)."""
from __future__ import annotations

import streamlit as st

from app_pages import common
from aspl.service import AuthError, ThrottledError

svc = common.service()
st.title("Log in")
common.show_flashes()

if not svc.has_admin():
    st.info("This library has no admin account yet. The server printed a one-time **setup token** to its "
            "log when it started; paste it here to create the first admin (or run "
            "`python -m aspl user add NAME --role admin` on the server).")
    with st.form("first_admin"):
        token = st.text_input("Setup token", type="password", key="setup_token")
        name = st.text_input("Admin name", key="setup_name")
        p1 = st.text_input("New password", type="password", key="setup_pw1")
        p2 = st.text_input("Repeat it", type="password", key="setup_pw2")
        if st.form_submit_button("Create the admin account"):
            if p1 != p2:
                st.error("The two passwords differ.")
            else:
                try:
                    made = svc.create_first_admin(token, name, p1)
                except (AuthError, ValueError) as e:
                    st.error(str(e))
                else:
                    common.log_in({"name": made, "role": "admin"})
                    st.rerun()
    st.stop()

with st.form("login"):
    name = st.text_input("Name", key="login_name")
    pw = st.text_input("Password", type="password", key="login_pw")
    if st.form_submit_button("Log in"):
        try:
            user = svc.authenticate(name, pw)
        except ThrottledError as e:
            st.error(f"Too many failed attempts: wait {e.retry_after:.0f} s and try again.")
        except AuthError as e:
            st.error(str(e).capitalize() + ".")
        else:
            common.log_in(user)
            st.rerun()
st.caption("Accounts are made by an admin (Admin → Accounts) or on the server: "
           "`python -m aspl user add NAME --role annotator`.")
try:
    sso = bool(st.secrets.get("auth"))
except (FileNotFoundError, KeyError, RuntimeError):
    sso = False
if sso:
    st.button("Log in with your organisation (SSO)", on_click=st.login, key="sso_login")
