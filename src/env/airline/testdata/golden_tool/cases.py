# Builds the call sequences, grouped by the tool under test.
import json
C = {}
def case(tool, *calls): C.setdefault(tool, []).append([list(c) for c in calls])
sd, so = "search_direct_flight", "search_onestop_flight"
case(sd, (sd, {"origin": "BOS", "destination": "ORD", "date": "2024-05-20"}))
case(sd, (sd, {"origin": "ORD", "destination": "SEA", "date": "2024-05-20"}))
case(sd, (sd, {"origin": "BOS", "destination": "ORD", "date": "2024-05-22"}))
case(sd, (sd, {"origin": "SEA", "destination": "BOS", "date": "2024-05-20"}))
case(so, (so, {"origin": "BOS", "destination": "SEA", "date": "2024-05-20"}))
case(so, (so, {"origin": "JFK", "destination": "SEA", "date": "2024-05-20"}))
case(so, (so, {"origin": "BOS", "destination": "SEA", "date": "2024-05-ab"}))
case(so, (so, {"origin": "BOS", "destination": "SEA", "date": "x"}))
case(so, (so, {"origin": "BOS", "destination": "SEA", "date": "2024-05+1"}))
case(so, (so, {"origin": "BOS", "destination": "SEA", "date": "2024-05-21"}))
case(so, (so, {"origin": "SEA", "destination": "BOS", "date": "2024-05-20"}))
g, r = "get_user_details", "get_reservation_details"
case(g, (g, {"user_id": "ivy_moreau_101"}))
case(g, (g, {"user_id": "nobody"}))
case(r, (r, {"reservation_id": "QX7P2A"}))
case(r, (r, {"reservation_id": "NOPE00"}))
case("list_all_airports", ("list_all_airports", {}))
sc = "send_certificate"
case(sc, (sc, {"user_id": "omar_castillo_202", "amount": 100}))
case(sc, (sc, {"user_id": "ivy_moreau_101", "amount": 250.0}), (sc, {"user_id": "ivy_moreau_101", "amount": 12.25}))
case(sc, (sc, {"user_id": "nobody", "amount": 5}))
cr = "cancel_reservation"
case(cr, (cr, {"reservation_id": "QX7P2A"}))
case(cr, (cr, {"reservation_id": "LM3K9Z"}), (cr, {"reservation_id": "LM3K9Z"}))
case(cr, (cr, {"reservation_id": "TR8W4N"}))
case(cr, (cr, {"reservation_id": "NOPE00"}))
up = "update_reservation_passengers"
case(up, (up, {"reservation_id": "QX7P2A", "passengers": [
    {"first_name": "Ivy", "last_name": "Moreau-Diaz", "dob": "1984-09-14"},
    {"dob": "2013-01-01", "first_name": "Rosa", "last_name": "Diaz", "seat": "12C"}]}))
case(up, (up, {"reservation_id": "QX7P2A", "passengers": [{"first_name": "A", "last_name": "B", "dob": "2000-01-01"}]}))
case(up, (up, {"reservation_id": "NOPE00", "passengers": []}))
ub = "update_reservation_baggages"
def bags(res, total, nonfree, pid): return (ub, {"reservation_id": res, "total_baggages": total, "nonfree_baggages": nonfree, "payment_id": pid})
case(ub, bags("QX7P2A", 3, 2, "credit_card_1100001"))
case(ub, bags("QX7P2A", 2, 1, "gift_card_1100002"))
case(ub, bags("LM3K9Z", 1, 0, "credit_card_1100001"))
case(ub, bags("LM3K9Z", 3, 2, "gift_card_1100004"))
case(ub, bags("LM3K9Z", 4, 3, "gift_card_1100004"))
case(ub, bags("QX7P2A", 2, 1, "certificate_1100003"))
case(ub, bags("QX7P2A", 2, 1, "paypal_0000001"))
case(ub, bags("NOPE00", 2, 1, "credit_card_1100001"))
case(ub, bags("QX7P2A", 0, 0, "certificate_1100003"))
uf = "update_reservation_flights"
def fl(res, cabin, flights, pid): return (uf, {"reservation_id": res, "cabin": cabin, "flights": [{"flight_number": n, "date": d} for n, d in flights], "payment_id": pid})
qx = [("HAT901", "2024-05-20"), ("HAT902", "2024-05-20")]
case(uf, fl("QX7P2A", "economy", qx, "credit_card_1100001"))
case(uf, fl("QX7P2A", "economy", [("HAT901", "2024-05-20"), ("HAT904", "2024-05-21")], "credit_card_1100001"))
case(uf, fl("QX7P2A", "economy", [("HAT901", "2024-05-20"), ("HAT904", "2024-05-21")], "gift_card_1100002"))
case(uf, fl("QX7P2A", "business", qx, "credit_card_1100001"))
case(uf, fl("QX7P2A", "business", [("HAT901", "2024-05-21"), ("HAT904", "2024-05-21")], "gift_card_1100002"))
case(uf, fl("QX7P2A", "business", [("HAT901", "2024-05-21"), ("HAT904", "2024-05-21")], "credit_card_1100001"))
case(uf, fl("QX7P2A", "economy", [("HAT999", "2024-05-20")], "credit_card_1100001"))
case(uf, fl("QX7P2A", "economy", [("HAT901", "2024-06-01")], "credit_card_1100001"))
case(uf, fl("QX7P2A", "economy", [("HAT901", "2024-05-22")], "credit_card_1100001"))
case(uf, fl("QX7P2A", "economy", [("HAT904", "2024-05-20")], "credit_card_1100001"))
case(uf, fl("QX7P2A", "economy", [("HAT901", "2024-05-21")], "certificate_1100003"))
case(uf, fl("QX7P2A", "economy", [("HAT901", "2024-05-21")], "paypal_0000001"))
case(uf, fl("NOPE00", "economy", qx, "credit_card_1100001"))
case(uf, fl("LM3K9Z", "basic_economy", [("HAT904", "2024-05-21")], "gift_card_1100004"))
case(uf, fl("LM3K9Z", "economy", [("HAT904", "2024-05-21")], "gift_card_1100004"))
case(uf, fl("LM3K9Z", "economy", [("HAT904", "2024-05-21")], "gift_card_1100002"))
case(uf, fl("LM3K9Z", "basic_economy", [], "credit_card_1100001"))
br = "book_reservation"
def book(user, cabin, flights, pax, pays, nonfree=0, insurance="no", total=None, origin="BOS", dest="SEA", ftype="one_way"):
    return (br, {"user_id": user, "origin": origin, "destination": dest, "flight_type": ftype, "cabin": cabin,
                 "flights": [{"flight_number": n, "date": d} for n, d in flights],
                 "passengers": [{"first_name": f"P{i}", "last_name": "Test", "dob": "1990-01-0%d" % (i + 1)} for i in range(pax)],
                 "payment_methods": [{"payment_id": p, "amount": a} for p, a in pays],
                 "total_baggages": nonfree + 1 if total is None else total, "nonfree_baggages": nonfree, "insurance": insurance})
case(br, book("ivy_moreau_101", "economy", qx, 1, [("gift_card_1100002", 200), ("certificate_1100003", 150), ("credit_card_1100001", 110)], nonfree=1, insurance="yes"))
cc = [("credit_card_1100001", 180)]
one = [("HAT901", "2024-05-20")]
case(br, *[book("ivy_moreau_101", "economy", one, 1, cc, origin="BOS", dest="ORD") for _ in range(4)])
case(br, book("ivy_moreau_101", "economy", qx, 1, [("credit_card_1100001", 459)], nonfree=1, insurance="yes"))
case(br, book("ivy_moreau_101", "economy", qx, 1, [("credit_card_1100001", 459.5)], nonfree=1, insurance="yes"))
case(br, book("ivy_moreau_101", "economy", qx, 1, [("gift_card_1100004", 100), ("credit_card_1100001", 360)], nonfree=1, insurance="yes"))
case(br, book("ivy_moreau_101", "economy", qx, 1, [("paypal_0000001", 460)], nonfree=1, insurance="yes"))
case(br, book("nobody", "economy", qx, 1, cc))
case(br, book("ivy_moreau_101", "economy", [("HAT999", "2024-05-20")], 1, cc))
case(br, book("ivy_moreau_101", "economy", [("HAT901", "2024-06-01")], 1, cc))
case(br, book("ivy_moreau_101", "economy", [("HAT901", "2024-05-22")], 1, cc))
case(br, book("ivy_moreau_101", "business", qx, 3, cc))
case(br, book("ivy_moreau_101", "economy", qx, 1, [("gift_card_1100002", 100), ("certificate_1100003", 75), ("certificate_1100003", 75), ("credit_card_1100001", 130)]))
case(br, book("ivy_moreau_101", "basic_economy", [("HAT904", "2024-05-21")], 2, [("credit_card_1100001", 121)], origin="ORD"))
case(br, book("ivy_moreau_101", "basic_economy", [("HAT904", "2024-05-21")], 2, [("credit_card_1100001", 121.5)], origin="ORD"))
case(br, book("ivy_moreau_101", "basic_economy", [("HAT904", "2024-05-21")], 1, [("gift_card_1100004", 20.25), ("credit_card_1100001", 40.25)], origin="ORD"))
b = book("ivy_moreau_101", "economy", [("HAT901", "2024-05-20")], 1, cc); b[1]["flights"] = [{"date": "2024-05-20", "flight_number": "HAT901", "note": "aisle"}]
case(br, b)
case(br, book("omar_castillo_202", "economy", [], 0, [], ftype="round_trip"))
import os
json.dump(C, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json"), "w"))

# Random well-typed sequences (a fixed seed, so the file is reproducible): arguments drawn from
# the fixture's ids and plausible values, respecting every schema including nested required keys
# and enums, since those are what the golden replay promises to match byte for byte.
import os, random
rng = random.Random(7)
USERS = ["ivy_moreau_101", "omar_castillo_202", "lena_park_303", "ghost_999"]
RES = ["QX7P2A", "LM3K9Z", "QX7P2A", "LM3K9Z", "TR8W4N", "HATHAT", "HATHAU", "NOPE00"]
FLIGHTS = ["HAT901", "HAT902", "HAT903", "HAT904", "HAT905", "HAT906", "HAT999"]
DATES = ["2024-05-19", "2024-05-20", "2024-05-21", "2024-05-22", "2024-05-10"]
AIRPORTS = ["BOS", "ORD", "SEA", "JFK", "LAX"]
PAYMENTS = ["credit_card_1100001", "gift_card_1100002", "certificate_1100003", "gift_card_1100004",
            "credit_card_2200001", "certificate_3221322", "certificate_3221323", "paypal_1"]
CABINS = ["basic_economy", "economy", "business"]
def amount(): return rng.choice([rng.randint(0, 600), round(rng.uniform(0, 600), rng.choice([1, 2])), 0, 50, 100.0])
FIXTURE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "..", "tests", "fixtures", "airline")
FIXTURE = {"flights": json.load(open(os.path.join(FIXTURE_DIR, "flights.json")))}
BOOKABLE = [(n, d) for n, f in FIXTURE["flights"].items() for d, day in f["dates"].items() if day["status"] == "available"]
def seg():
    n, d = rng.choice(BOOKABLE) if rng.random() < 0.85 else (rng.choice(FLIGHTS), rng.choice(DATES))
    return {"flight_number": n, "date": d}
def segs(): return [seg() for _ in range(rng.randint(0, 3))]
def pax(): return [{"first_name": rng.choice(["Al", "Bo", "Cy"]), "last_name": "Q", "dob": "1999-09-09"} for _ in range(rng.randint(0, 3))]
def random_call():
    t = rng.choice(["book_reservation"] * 4 + ["update_reservation_flights"] * 3 + ["update_reservation_baggages"] * 2 + [
        "cancel_reservation", "send_certificate", "update_reservation_passengers", "search_direct_flight",
        "search_onestop_flight", "get_user_details", "get_reservation_details"])
    if t == "book_reservation":
        cabin, flights, passengers = rng.choice(CABINS), segs(), pax()
        nonfree, insurance = rng.randint(0, 3), rng.choice(["yes", "no"])
        payments = [{"payment_id": rng.choice(PAYMENTS), "amount": amount()} for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.6:
            # Pay the exact fare (as far as the fixture's prices tell), split over one to three methods.
            total = 0
            for seg in flights:
                day = FIXTURE["flights"].get(seg["flight_number"], {}).get("dates", {}).get(seg["date"], {})
                total += day.get("prices", {}).get(cabin, 0) * len(passengers)
            total += (30 * len(passengers) if insurance == "yes" else 0) + 50 * nonfree
            ids = rng.sample(PAYMENTS[:4], rng.randint(1, 3))
            shares = [rng.choice([0, 10, 25.5, 40]) for _ in ids[1:]]
            payments = [{"payment_id": i, "amount": a} for i, a in zip(ids[1:], shares)] + [{"payment_id": ids[0], "amount": total - sum(shares)}]
        return [t, {"user_id": "ivy_moreau_101" if rng.random() < 0.8 else rng.choice(USERS), "origin": rng.choice(AIRPORTS), "destination": rng.choice(AIRPORTS),
                    "flight_type": rng.choice(["one_way", "round_trip"]), "cabin": cabin, "flights": flights,
                    "passengers": passengers, "payment_methods": payments,
                    "total_baggages": rng.randint(0, 4), "nonfree_baggages": nonfree, "insurance": insurance}]
    if t == "update_reservation_flights":
        return [t, {"reservation_id": rng.choice(RES), "cabin": rng.choice(CABINS), "flights": segs(), "payment_id": rng.choice(PAYMENTS[:5])}]
    if t == "update_reservation_baggages":
        return [t, {"reservation_id": rng.choice(RES), "total_baggages": rng.randint(0, 5), "nonfree_baggages": rng.randint(-1, 4), "payment_id": rng.choice(PAYMENTS[:5])}]
    if t == "cancel_reservation":
        return [t, {"reservation_id": rng.choice(RES)}]
    if t == "send_certificate":
        return [t, {"user_id": rng.choice(USERS[1:]), "amount": amount()}]
    if t == "update_reservation_passengers":
        return [t, {"reservation_id": rng.choice(RES), "passengers": pax()}]
    if t in ("search_direct_flight", "search_onestop_flight"):
        return [t, {"origin": rng.choice(AIRPORTS), "destination": rng.choice(AIRPORTS), "date": rng.choice(DATES)}]
    if t == "get_user_details":
        return [t, {"user_id": rng.choice(USERS)}]
    return [t, {"reservation_id": rng.choice(RES)}]
C["random"] = [[random_call() for _ in range(rng.randint(1, 5))] for _ in range(200)]
json.dump(C, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json"), "w"))
