"""An OpenFaaS gateway client written from OpenFaaS's documented REST API, stdlib only.

It knows the routes and bodies of the API documentation, nothing of Fjord, and sends the
credentials as faas-cli does (basic auth, user admin) or as a bearer token:

    openfaas_client.py GATEWAY [--password P | --bearer T] [--user U] COMMAND ARGS...

Commands: info, list, get NAME, deploy NAME IMAGE [--update] [--env K=V]... [--secret S]...
[--label K=V]... [--annotation K=V]... [--memory Q] [--cpu Q] [--env-process P], remove NAME,
scale NAME N, logs NAME [--tail N] [--since RFC3339] [--follow-lines N --follow-seconds S],
secret-create NAME VALUE [--raw], secret-update NAME VALUE [--raw], secret-list,
secret-remove NAME, raw METHOD PATH BODY.

Prints one JSON object: {"status": HTTP status, "headers": {lowercase name: value}, "body": the JSON answer, or
its text, or for logs the list of entries}.
"""

import argparse
import base64
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def key_values(pairs):
    out = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        out[key] = value
    return out


class Gateway:
    def __init__(self, url, user, password, bearer):
        self.url = url.rstrip("/")
        if bearer is not None:
            self.authorization = "Bearer " + bearer
        elif password is not None:
            raw = (user + ":" + password).encode()
            self.authorization = "Basic " + base64.b64encode(raw).decode()
        else:
            self.authorization = None

    def request(self, method, path, body=None, raw=None, timeout=30):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.authorization:
            request.add_header("Authorization", self.authorization)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            response = error
        return response

    def call(self, method, path, body=None, raw=None):
        response = self.request(method, path, body, raw)
        text = response.read().decode()
        try:
            parsed = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = text
        return result(response, parsed)

    def logs(self, name, tail, since, follow_lines, follow_seconds):
        query = {"name": name}
        if tail is not None:
            query["tail"] = str(tail)
        if since:
            query["since"] = since
        follow = follow_lines is not None
        query["follow"] = "true" if follow else "false"
        path = "/system/logs?" + urllib.parse.urlencode(query)
        response = self.request("GET", path, timeout=follow_seconds or 30)
        if response.status != 200:
            return result(response, response.read().decode())
        entries = []
        deadline = time.monotonic() + (follow_seconds or 30)
        try:
            for line in response:
                if line.strip():
                    entries.append(json.loads(line))
                if follow and len(entries) >= follow_lines:
                    break
                if time.monotonic() > deadline:
                    break
        except TimeoutError:
            pass
        finally:
            response.close()
        return result(response, entries)


def result(response, body):
    headers = {name.lower(): value for name, value in response.headers.items()}
    return {"status": response.status, "headers": headers, "body": body}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("gateway")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password")
    parser.add_argument("--bearer")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info")
    commands.add_parser("list")
    commands.add_parser("get").add_argument("name")
    deploy = commands.add_parser("deploy")
    deploy.add_argument("name")
    deploy.add_argument("image")
    deploy.add_argument("--update", action="store_true")
    deploy.add_argument("--env", action="append")
    deploy.add_argument("--secret", action="append")
    deploy.add_argument("--label", action="append")
    deploy.add_argument("--annotation", action="append")
    deploy.add_argument("--memory")
    deploy.add_argument("--cpu")
    deploy.add_argument("--env-process")
    commands.add_parser("remove").add_argument("name")
    scale = commands.add_parser("scale")
    scale.add_argument("name")
    scale.add_argument("replicas", type=int)
    logs = commands.add_parser("logs")
    logs.add_argument("name")
    logs.add_argument("--tail", type=int)
    logs.add_argument("--since")
    logs.add_argument("--follow-lines", type=int)
    logs.add_argument("--follow-seconds", type=float)
    for verb in ("secret-create", "secret-update"):
        secret = commands.add_parser(verb)
        secret.add_argument("name")
        secret.add_argument("value")
        secret.add_argument("--raw", action="store_true")
    commands.add_parser("secret-list")
    commands.add_parser("secret-remove").add_argument("name")
    raw = commands.add_parser("raw")
    raw.add_argument("method")
    raw.add_argument("path")
    raw.add_argument("body")
    args = parser.parse_args()

    gateway = Gateway(args.gateway, args.user, args.password, args.bearer)
    if args.command == "info":
        out = gateway.call("GET", "/system/info")
    elif args.command == "list":
        out = gateway.call("GET", "/system/functions")
    elif args.command == "get":
        out = gateway.call("GET", "/system/function/" + args.name)
    elif args.command == "deploy":
        body = {"service": args.name, "image": args.image}
        if args.env:
            body["envVars"] = key_values(args.env)
        if args.secret:
            body["secrets"] = args.secret
        if args.label:
            body["labels"] = key_values(args.label)
        if args.annotation:
            body["annotations"] = key_values(args.annotation)
        if args.memory or args.cpu:
            body["limits"] = {k: v for k, v in (("memory", args.memory), ("cpu", args.cpu)) if v}
        if args.env_process:
            body["envProcess"] = args.env_process
        out = gateway.call("PUT" if args.update else "POST", "/system/functions", body)
    elif args.command == "remove":
        out = gateway.call("DELETE", "/system/functions", {"functionName": args.name})
    elif args.command == "scale":
        body = {"serviceName": args.name, "replicas": args.replicas}
        out = gateway.call("POST", "/system/scale-function/" + args.name, body)
    elif args.command == "logs":
        out = gateway.logs(args.name, args.tail, args.since, args.follow_lines, args.follow_seconds)
    elif args.command in ("secret-create", "secret-update"):
        body = {"name": args.name}
        if args.raw:
            body["rawValue"] = base64.b64encode(args.value.encode()).decode()
        else:
            body["value"] = args.value
        out = gateway.call("POST" if args.command == "secret-create" else "PUT", "/system/secrets", body)
    elif args.command == "secret-list":
        out = gateway.call("GET", "/system/secrets")
    elif args.command == "secret-remove":
        out = gateway.call("DELETE", "/system/secrets", {"name": args.name})
    else:
        out = gateway.call(args.method, args.path, raw=args.body.encode())
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
