"""A small Flask app: JSON, forms, uploads, streaming and errors."""

from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)
application = app


@app.get("/")
def index():
    return "Hello from Flask\n"


@app.route("/echo", methods=["POST"])
def echo():
    data = request.get_data()
    return jsonify(length=len(data), content_type=request.content_type, head=data[:64].decode("latin-1"))


@app.post("/form")
def form():
    upload = request.files.get("file")
    return jsonify(
        fields=request.form.to_dict(),
        file_name=upload.filename if upload else None,
        file_size=len(upload.read()) if upload else None,
    )


@app.get("/stream")
def stream():
    count = request.args.get("n", default=3, type=int)

    def generate():
        for i in range(count):
            yield f"chunk {i}\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/whoami")
def whoami():
    return jsonify(
        path=request.path,
        query=request.query_string.decode("latin-1"),
        scheme=request.scheme,
        host=request.host,
        remote_addr=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
    )


@app.get("/boom")
def boom():
    raise RuntimeError("boom from flask")
