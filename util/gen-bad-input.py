#!/usr/bin/env python3
"""Writes t/080-bad-input.t: one Test::Nginx block per malformed or hostile
request, from the table below (run it again after changing the table)."""

U = "$::Unauthorized"
F = "$::Forbidden"
B = "$::BadRequest"
N = "$::NginxBadRequest"
OK = '"ok\\n"'

# name, how (header line | raw bytes in Perl | query), location, status, body,
# WWW-Authenticate (None: not checked, '!': absent)
R = 'Bearer realm="api"'
RI = 'Bearer realm="api", error="invalid_token"'
RQ = 'Bearer realm="api", error="invalid_request"'

cases = [
    ("no Authorization header", None, "/api", 401, U, R),
    ("Bearer alone", "Authorization: Bearer", "/api", 401, U, RI),
    ("Bearer with two spaces before a valid token (1*SP)", "Authorization: Bearer  good-token", "/api", 200, OK, "!"),
    ("lowercase bearer with a valid token", "Authorization: bearer good-token", "/api", 200, OK, "!"),
    ("Basic credentials", "Authorization: Basic dXNlcjpwYXNz", "/api", 401, U, R),
    ("Digest credentials", 'Authorization: Digest username="a"', "/api", 401, U, R),
    ("BearerX scheme", "Authorization: BearerX good-token", "/api", 401, U, R),
    ("empty Authorization header", "Authorization:", "/api", 401, U, R),
    ("Bearer and spaces only (trimmed by nginx)", "Authorization: Bearer      ", "/api", 401, U, RI),
    ("a space inside the token", "Authorization: Bearer good token", "/api", 401, U, RI),
    ("two tokens", "Authorization: Bearer a Bearer b", "/api", 401, U, RI),
    ("a tab after Bearer", "raw:Authorization: Bearer\\tgood-token", "/api", 401, U, RI),
    ("a tab inside the token", "raw:Authorization: Bearer good\\ttoken", "/api", 401, U, RI),
    ("CR inside the header (nginx refuses the line)", "raw:Authorization: Bearer a\\rb", "/api", 400, N, None),
    ("NUL inside the header (nginx refuses the line)", "raw:Authorization: Bearer a\\x00b", "/api", 400, N, None),
    ("obsolete line folding (nginx refuses it)", "raw:Authorization: Bearer a\\n b", "/api", 400, N, None),
    ("a double quote", 'Authorization: Bearer a"b', "/api", 401, U, RI),
    ("a single quote", "Authorization: Bearer a'b", "/api", 401, U, RI),
    ("an asterisk", "Authorization: Bearer a*b", "/api", 401, U, RI),
    ("a dollar sign", "Authorization: Bearer $abc", "/api", 401, U, RI),
    ("Redis protocol characters", "Authorization: Bearer *3$3DEL$5hello", "/api", 401, U, RI),
    ("Redis protocol bytes with CRLF (end the header; nginx drops the invalid lines)", "raw:Authorization: Bearer x\\r\\n*3\\r\\n$3\\r\\nDEL", "/api", 401, U, RI),
    ("percent-encoded NUL", "Authorization: Bearer %00", "/api", 401, U, RI),
    ("a comma", "Authorization: Bearer a,b", "/api", 401, U, RI),
    ("a semicolon", "Authorization: Bearer a;b", "/api", 401, U, RI),
    ("non-UTF-8 bytes", "raw:Authorization: Bearer \\xff\\xfe\\xfd", "/api", 401, U, RI),
    ("UTF-8 letters", "raw:Authorization: Bearer \\xc3\\xbc\\xc3\\xa9", "/api", 401, U, RI),
    ("padding only", "Authorization: Bearer ===", "/api", 401, U, RI),
    ("padding inside", "Authorization: Bearer ab=cd", "/api", 401, U, RI),
    ("a token of 4096 bytes (the limit), unknown", 'eval:"Authorization: Bearer " . ("a" x 4096)', "/api", 401, U, RI),
    ("a token of 8 KB", 'eval:"Authorization: Bearer " . ("a" x 8000)', "/api", 401, U, RI),
    ("a token of 64 KB (nginx: header too large)", 'eval:"Authorization: Bearer " . ("a" x 65536)', "/api", 400, N, None),
    ("a token of 1 MB (nginx: header too large)", 'eval:"Authorization: Bearer " . ("a" x 1048576)', "/api", 400, N, None),
    ("two Authorization headers", "Authorization: Bearer a\nAuthorization: Bearer b", "/api", 400, N, None),
    # the module refuses through nginx's access checker: the server's
    # error_page 400 applies to its 400 too (its headers stay)
    ("access_token in the query string", "query:access_token=good-token", "/api", 400, N, RQ),
    ("an empty access_token in the query string", "query:access_token=", "/api", 400, N, RQ),
    ("ACCESS_TOKEN in the query string (any case)", "query:ACCESS_TOKEN=x", "/api", 400, N, RQ),
    ("Proxy-Authorization only", "Proxy-Authorization: Bearer good-token", "/api", 401, U, R),
    ("JWT alg none", "jwt:none", "/api", 401, U, RI),
    ("JWT HS256 signed with the RSA public key (key confusion)", "jwt:confused", "/api", 401, U, RI),
    ("JWT with a truncated signature segment", "jwt:truncated", "/api", 401, U, RI),
    ("JWT with two segments only", "jwt:twoseg", "/api", 401, U, RI),
    ("JWT with bad base64url in the payload", "jwt:badb64", "/api", 401, U, RI),
    ("JWT with a claims segment that is not JSON", "jwt:notjson", "/api", 401, U, RI),
    ("JWT with huge claims (over the token limit)", "jwt:huge", "/api", 401, U, RI),
    ("JWT with scope as an array (scp) and the scope needed", "jwt:scparr", "/api", 200, OK, "!"),
    ("JWT expired", "jwt:expired", "/api", 401, U, RI),
    ("JWT with nbf in the future", "jwt:nbf", "/api", 401, U, RI),
    ("JWT with exp as a string", "jwt:expstr", "/api", 401, U, RI),
    ("JWT with a header that is an array", "jwt:hdrarray", "/api", 401, U, RI),
    ("record without client_id", "Authorization: Bearer rec-noclient", "/api", 401, U, RI),
    ("record with an empty scope", "Authorization: Bearer rec-emptyscope", "/api", 403, F, 'Bearer realm="api", error="insufficient_scope", scope="accounts"'),
    ("record with a non-numeric exp", "Authorization: Bearer rec-badexp", "/api", 401, U, RI),
    ("record with a negative exp", "Authorization: Bearer rec-negexp", "/api", 401, U, RI),
    ("record with an unknown plan (default plan applies)", "Authorization: Bearer rec-unknownplan", "/api", 200, OK, "!"),
    ("record that is not a hash", "Authorization: Bearer rec-string", "/api", 503, "$::Unavailable", "!"),
    ("consent status VALID", "Authorization: Bearer cons-upper", "/api", 403, F, "!"),
    ("consent status empty", "Authorization: Bearer cons-empty", "/api", 403, F, "!"),
    ("consent status with a newline", "Authorization: Bearer cons-newline", "/api", 403, F, "!"),
    ("consent status expired", "Authorization: Bearer cons-expired", "/api", 403, F, "!"),
    ("consent key that is a list", "Authorization: Bearer cons-list", "/api", 403, F, "!"),
    ("POST with a body and no token", "post:", "/api", 401, U, R),
    ("HEAD without a token", "head:", "/api", 401, "", R),
]

out = []
for i, (name, how, loc, status, body, www) in enumerate(cases, 1):
    b = [f"=== TEST {i}: {name}"]
    if how is None:
        b += ["--- request", f"GET {loc}"]
    elif how.startswith("raw:"):
        line = how[4:].replace("$", "\\$")
        b += ["--- raw_request eval",
              f'"GET {loc} HTTP/1.1\\r\\nHost: localhost\\r\\n{line}\\r\\nConnection: close\\r\\n\\r\\n"']
    elif how.startswith("eval:"):
        b += ["--- request", f"GET {loc}", "--- more_headers eval", how[5:]]
    elif how.startswith("query:"):
        b += ["--- request", f"GET {loc}?{how[6:]}"]
    elif how.startswith("jwt:"):
        b += ["--- request", f"GET {loc}", "--- more_headers eval",
              f'"Authorization: Bearer $::T{{{how[4:]}}}"']
    elif how.startswith("post:"):
        b += ["--- request", f"POST {loc}\nsome=body&more=data"]
    elif how.startswith("head:"):
        b += ["--- request", f"HEAD {loc}"]
    else:
        b += ["--- request", f"GET {loc}", "--- more_headers", how]
    b += [f"--- error_code: {status}"]
    if body == "":
        b += ["--- response_body", ""]
    elif body.startswith('"'):
        b += ["--- response_body eval", body]
    else:
        b += ["--- response_body eval", body]
    if www == "!":
        b += ["--- response_headers", "!WWW-Authenticate"]
    elif www:
        b += ["--- response_headers", f"WWW-Authenticate: {www}"]
    out.append("\n".join(b))

head = open(__file__.replace("gen-bad-input.py", "bad-input.head.t")).read()
with open(__file__.replace("util/gen-bad-input.py", "t/080-bad-input.t"), "w") as f:
    f.write(head + "__DATA__\n\n" + "\n\n\n\n".join(out) + "\n")
print(len(cases), "blocks")
