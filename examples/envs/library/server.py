#!/usr/bin/env python3
"""Tool server of the library environment package, for apigen-mt.

Speaks JSON-RPC 2.0 over stdio, one JSON message per line (MCP's stdio transport):
MCP's initialize, tools/list and tools/call, plus env/reset (load the tables),
env/state (return them) and env/check (the policy rules an action trace breaks).
Standard library only. Every tool is deterministic: the same calls on the same
tables give the same state.
"""

import copy
import datetime
import json
import sys

TABLES = {}

LOAN_DAYS = 21
RENEW_DAYS = 14
MAX_RENEWALS = 2
MAX_LOANS = 3
FINE_LIMIT = 10.0


def schema(properties, required):
    return {"type": "object", "properties": properties, "required": required}


STRING = {"type": "string"}

TOOLS = [
    {
        "name": "find_member_by_email",
        "description": "Find a member's id by their email address. Use it first, to confirm who you are talking to.",
        "inputSchema": schema({"email": STRING}, ["email"]),
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "get_member_details",
        "description": "Get a member's record: name, email, fines owed and the ids of their loans.",
        "inputSchema": schema({"member_id": STRING}, ["member_id"]),
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "get_loan_details",
        "description": "Get a loan: the book, the member, the due date, its status and how often it was renewed.",
        "inputSchema": schema({"loan_id": STRING}, ["loan_id"]),
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "get_book_details",
        "description": "Get a book: title, author and how many copies are on the shelf.",
        "inputSchema": schema({"book_id": STRING}, ["book_id"]),
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "renew_loan",
        "description": f"Renew an active loan by {RENEW_DAYS} days from its due date. A loan can be renewed at most {MAX_RENEWALS} times.",
        "inputSchema": schema({"loan_id": STRING}, ["loan_id"]),
    },
    {
        "name": "return_book",
        "description": "Record that the book of an active loan was returned; the copy goes back on the shelf.",
        "inputSchema": schema({"loan_id": STRING}, ["loan_id"]),
    },
    {
        "name": "borrow_book",
        "description": f"Lend a book to a member for {LOAN_DAYS} days from the given date (YYYY-MM-DD). "
        f"Needs a copy on the shelf, fewer than {MAX_LOANS} active loans and fines under {FINE_LIMIT:.2f}.",
        "inputSchema": schema({"member_id": STRING, "book_id": STRING, "date": STRING}, ["member_id", "book_id", "date"]),
    },
    {
        "name": "pay_fine",
        "description": "Take a payment towards a member's fines. The amount must be positive and at most what is owed.",
        "inputSchema": schema({"member_id": STRING, "amount": {"type": "number"}}, ["member_id", "amount"]),
    },
    {
        "name": "transfer_to_librarian",
        "description": "Hand the conversation to a librarian, with a summary, when the request is outside this policy.",
        "inputSchema": schema({"summary": STRING}, ["summary"]),
    },
]


class Refusal(Exception):
    """A tool refusing a call: the agent sees the message as an error."""


class UnknownMethod(Exception):
    """A JSON-RPC method this server does not have."""


def record(table, key):
    found = TABLES.get(table, {}).get(key)
    if found is None:
        raise Refusal(f"{table[:-1]} {key} not found")
    return found


def active_loan(loan_id):
    loan = record("loans", loan_id)
    if loan["status"] != "active":
        raise Refusal(f"loan {loan_id} is {loan['status']}, not active")
    return loan


def shift(date, days):
    day = datetime.date.fromisoformat(date) + datetime.timedelta(days=days)
    return day.isoformat()


def dumps(value):
    return json.dumps(value, ensure_ascii=False)


def find_member_by_email(email):
    for member_id, member in TABLES["members"].items():
        if member["email"] == email:
            return member_id
    raise Refusal("member not found")


def get_member_details(member_id):
    return dumps(record("members", member_id))


def get_loan_details(loan_id):
    return dumps(record("loans", loan_id))


def get_book_details(book_id):
    return dumps(record("books", book_id))


def renew_loan(loan_id):
    loan = active_loan(loan_id)
    if loan["renewals"] >= MAX_RENEWALS:
        raise Refusal(f"loan {loan_id} was already renewed {loan['renewals']} times")
    loan["renewals"] += 1
    loan["due_date"] = shift(loan["due_date"], RENEW_DAYS)
    return dumps(loan)


def return_book(loan_id):
    loan = active_loan(loan_id)
    loan["status"] = "returned"
    record("books", loan["book_id"])["copies_available"] += 1
    return dumps(loan)


def borrow_book(member_id, book_id, date):
    member = record("members", member_id)
    book = record("books", book_id)
    try:
        due = shift(date, LOAN_DAYS)
    except ValueError:
        raise Refusal(f"date {date!r} is not YYYY-MM-DD")
    if book["copies_available"] < 1:
        raise Refusal(f"no copy of {book_id} is on the shelf")
    active = [l for l in member["loans"] if TABLES["loans"][l]["status"] == "active"]
    if len(active) >= MAX_LOANS:
        raise Refusal(f"member {member_id} already has {len(active)} active loans")
    if member["fines"] >= FINE_LIMIT:
        raise Refusal(f"member {member_id} owes {member['fines']:.2f} in fines")
    loan_id = f"L{len(TABLES['loans']) + 1:04d}"
    loan = {"loan_id": loan_id, "member_id": member_id, "book_id": book_id, "due_date": due, "status": "active", "renewals": 0}
    TABLES["loans"][loan_id] = loan
    member["loans"].append(loan_id)
    book["copies_available"] -= 1
    return dumps(loan)


def pay_fine(member_id, amount):
    member = record("members", member_id)
    if not 0 < amount <= member["fines"]:
        raise Refusal(f"amount must be positive and at most {member['fines']:.2f}")
    member["fines"] = round(member["fines"] - amount, 2)
    return dumps({"member_id": member_id, "paid": amount, "fines": member["fines"]})


def transfer_to_librarian(summary):
    return "Transfer successful"


FUNCTIONS = {tool["name"]: globals()[tool["name"]] for tool in TOOLS}
WRITES = {"renew_loan", "return_book", "borrow_book", "pay_fine"}


def call_tool(params):
    name = params.get("name")
    if name not in FUNCTIONS:
        return {"content": [{"type": "text", "text": f"Error: unknown tool {name!r}"}], "isError": True}
    try:
        text = FUNCTIONS[name](**params.get("arguments", {}))
        return {"content": [{"type": "text", "text": text}], "isError": False}
    except Refusal as refusal:
        return {"content": [{"type": "text", "text": f"Error: {refusal}"}], "isError": True}


def member_of(action, tables):
    """The member an action acts for, or None when it names none."""
    args = action.get("kwargs", {})
    if "member_id" in args:
        return args["member_id"]
    loan = tables.get("loans", {}).get(args.get("loan_id"))
    return loan["member_id"] if loan else None


def check(params):
    """The rules of policy.md that the trace breaks, with stable ids."""
    tables = params["tables"]
    found = []
    identified = None
    renewed = set()
    for step, action in enumerate(params["actions"]):
        name, args = action["name"], action.get("kwargs", {})
        if name == "find_member_by_email":
            members = [m for m, r in tables["members"].items() if r["email"] == args.get("email")]
            if members and identified is None:
                identified = members[0]
            continue
        if name not in WRITES:
            continue
        member = member_of(action, tables)
        if identified is None:
            found.append({"id": "library.not_identified", "step": step,
                          "message": f"{name} changes a member's data before the member was identified by email; identify them first"})
        elif member is not None and member != identified:
            found.append({"id": "library.wrong_member", "step": step,
                          "message": f"{name} acts for member {member}, but this conversation is with {identified}; help only the identified member"})
        if name == "renew_loan":
            if args.get("loan_id") in renewed:
                found.append({"id": "library.renewed_twice", "step": step,
                              "message": f"loan {args.get('loan_id')} is renewed a second time in one conversation; renew a loan once per request"})
            renewed.add(args.get("loan_id"))
    return {"violations": found}


def handle(method, params):
    global TABLES
    if method == "initialize":
        return {"protocolVersion": params.get("protocolVersion", "2025-06-18"), "capabilities": {"tools": {}},
                "serverInfo": {"name": "library", "version": "1.0"}}
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        return call_tool(params)
    if method == "env/reset":
        TABLES = copy.deepcopy(params["tables"])
        return {}
    if method == "env/state":
        return {"tables": TABLES}
    if method == "env/check":
        return check(params)
    if method == "ping":
        return {}
    raise UnknownMethod(method)


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if "id" not in message:
            continue  # a notification, such as notifications/initialized
        try:
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": handle(message["method"], message.get("params", {}))}
        except UnknownMethod:
            reply = {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": f"method not found: {message['method']}"}}
        except (TypeError, ValueError, KeyError) as e:
            reply = {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32602, "message": f"invalid params: {e}"}}
        sys.stdout.write(json.dumps(reply, ensure_ascii=False) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
