def handle(event, context):
    """Answers a request. event.body is bytes; event.headers, event.method, event.path and
    event.query describe the rest. Return a string, bytes, or
    {"statusCode": 200, "body": "...", "headers": {...}}."""
    return {"statusCode": 200, "body": "Hello from Fjord!\n"}
