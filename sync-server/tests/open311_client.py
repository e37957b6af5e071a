"""Open311 GeoReport v2 conformance, run by tests/open311.rs against the
station binary: the third-party client `georeport` (PyPI, pinned in
scripts/python-deps.sh) reads services, a service definition, requests and
one request in JSON and XML; `requests` checks POST requests and every
error case. Usage: open311_client.py BASE_URL API_KEY SERVICE_CODE REQUEST_ID"""
import re
import sys

import requests
import xmltodict
from georeport import GeoReport

base, api_key, code, known_id = sys.argv[1:5]
root = f"{base}/open311/v2"
W3C = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")

for fmt in ("json", "xml"):
    client = GeoReport(root, output_format=fmt)
    services = client.get_service_list()
    services = services if isinstance(services, list) else [services]
    assert any(s["service_code"] == code for s in services), services
    assert all(s["service_name"] for s in services)
    definition = client.get_service_definition(code)
    assert definition["service_code"] == code, definition
    listed = client.get_service_requests()
    listed = listed if isinstance(listed, list) else [listed]
    assert len(listed) >= 1, listed
    for r in listed:
        assert r["status"] in ("open", "closed"), r
        assert W3C.match(r["requested_datetime"]), r
        for personal in ("reported_by", "phone", "contact", "account_id"):
            assert personal not in r, r
    one = client.get_service_request(known_id)
    assert one["service_request_id"] == known_id, one
    opened = client.get_service_requests(status="open")
    opened = opened if isinstance(opened, list) else [opened]
    assert all(r["status"] == "open" for r in opened), opened
    by_code = client.get_service_requests(service_code=code)
    by_code = by_code if isinstance(by_code, list) else [by_code]
    assert all(r["service_code"] == code for r in by_code), by_code

# POST requests, and the errors, in both formats.
for fmt in ("json", "xml"):
    url = f"{root}/requests.{fmt}"
    good = {"api_key": api_key, "service_code": code, "lat": "39.8661", "long": "116.3451",
            "description": "路口乱堆建筑垃圾"}
    r = requests.post(url, data=good)
    assert r.status_code == 200, r.text
    if fmt == "json":
        new_id = r.json()[0]["service_request_id"]
    else:
        new_id = xmltodict.parse(r.content)["service_requests"]["request"]["service_request_id"]
    got = GeoReport(root, output_format=fmt).get_service_request(new_id)
    assert got["service_request_id"] == new_id and got["status"] == "open", got

    def error_of(resp):
        if fmt == "json":
            e = resp.json()[0]
        else:
            e = xmltodict.parse(resp.content)["errors"]["error"]
        assert int(e["code"]) == resp.status_code and e["description"], e
        return resp.status_code

    assert error_of(requests.post(url, data={**good, "api_key": "wrong"})) == 403
    assert error_of(requests.post(url, data={k: v for k, v in good.items() if k != "api_key"})) == 403
    assert error_of(requests.post(url, data={**good, "service_code": "nope"})) == 400
    assert error_of(requests.post(url, data={k: v for k, v in good.items() if k not in ("lat", "long")})) == 400
    assert error_of(requests.post(url, data={**good, "lat": "200"})) == 400
    assert error_of(requests.get(f"{root}/requests/nosuchcase.{fmt}")) == 404
    assert error_of(requests.get(f"{root}/services/nosuch.{fmt}")) == 404
    assert error_of(requests.get(f"{root}/tokens/nosuchtoken.{fmt}")) == 404
    tokens = requests.get(f"{root}/tokens/{new_id}.json").json()
    assert tokens[0]["service_request_id"] == new_id, tokens
    assert error_of(requests.get(f"{root}/requests.{fmt}", params={"status": "maybe"})) == 400
    assert error_of(requests.get(f"{root}/requests.{fmt}", params={"start_date": "yesterday"})) == 400
    assert error_of(requests.get(f"{root}/requests.{fmt}",
                                 params={"start_date": "2026-01-01T00:00:00Z",
                                         "end_date": "2026-12-01T00:00:00Z"})) == 400
discovery = requests.get(f"{root}/discovery.json").json()
assert discovery["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
print("ok")
