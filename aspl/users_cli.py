"""``python -m aspl user {add,list,passwd,role,disable,enable}``: accounts from the command line (the
machine's owner; no login needed)."""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Callable

ROLES = ("annotator", "reviewer", "admin")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("repeat it: ") != first:
        raise ValueError("the two passwords differ")
    return first


def run_user(args: argparse.Namespace) -> int:
    """Carry out one ``user`` sub-command on the library ``args.db``."""
    from storage import Library

    from .service import Service, ServiceError

    with Library(args.db) as lib:
        svc = Service(lib)
        try:
            if args.action == "add":
                name = svc.add_user(args.name, _password(args), args.role, actor="cli")
                print(f"account {name} ({args.role}) created")
            elif args.action == "list":
                for u in svc.users():
                    print(json.dumps(u))
            elif args.action == "passwd":
                svc.set_password(args.name, _password(args), actor="cli")
                print(f"password of {args.name} changed")
            elif args.action == "role":
                svc.set_role(args.name, args.role, actor="cli")
                print(f"{args.name} is now {args.role}")
            else:
                svc.disable_user(args.name, actor="cli", disabled=args.action == "disable")
                print(f"{args.name} {args.action}d")
        except ServiceError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


def add_user_parser(sub: argparse._SubParsersAction, db_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``user`` and its actions."""
    sp = sub.add_parser("user", help="manage accounts (annotator, reviewer, admin)")
    acts = sp.add_subparsers(dest="action", required=True)
    for action, helptext in (("add", "create an account"), ("passwd", "set a new password"),
                             ("role", "change the role"), ("disable", "disable an account"),
                             ("enable", "enable an account again"), ("list", "list accounts as JSON lines")):
        a = acts.add_parser(action, help=helptext)
        if action != "list":
            a.add_argument("name")
        if action == "add":
            a.add_argument("--role", choices=ROLES, default="annotator")
        if action == "role":
            a.add_argument("role", choices=ROLES)
        if action in ("add", "passwd"):
            a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        db_arg(a)
        a.set_defaults(func=run_user)
