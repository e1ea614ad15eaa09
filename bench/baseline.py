"""The framework's floor: a bare Flask app with one POST route that parses a JSON body and answers
a constant JSON object. The benchmark runs it under the same gunicorn settings as the service."""

import json

from flask import Flask, Response, request

app = Flask(__name__)
ANSWER = json.dumps({"op": "login", "ts": 0, "result": "OK"})


@app.post("/")
def endpoint():
    json.loads(request.get_data())
    return Response(ANSWER, mimetype="application/json")
