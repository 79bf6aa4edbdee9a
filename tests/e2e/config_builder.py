"""snisplice configurations for the e2e tests as Python values, written out as YAML.

    proxy_config(listeners=[listener("tls", ["127.0.0.1:8443"], "t")],
                 tables={"t": [route("*", backend="b")]},
                 backends={"b": {"servers": ["127.0.0.1:9000"]}},
                 metrics_port=9446, timeouts={"idle": "3s"})

gives a document the daemon reads; `to_yaml` writes any dict/list/scalar tree as block YAML
(strings double-quoted, so no value is read as another type)."""
import json

# What every e2e proxy has unless a test says otherwise (see harness.Proxy).
DEFAULTS = {"workers": 2, "log_level": "debug", "access_log": "stdout",
            "timeouts": {"idle": "30s", "shutdown_grace": "5s"}}


def _scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)   # a JSON string is a YAML double-quoted scalar


def to_yaml(value, indent=0):
    """Block YAML for nested dicts and lists; lists of scalars and empty ones inline."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if _nested(item):
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{key}: {_inline(item)}")
    elif isinstance(value, list):
        for item in value:
            if _nested(item):
                first, *rest = to_yaml(item, indent + 2).split("\n")
                lines.append(f"{pad}- {first.lstrip()}")
                lines.extend(rest)
            else:
                lines.append(f"{pad}- {_inline(item)}")
    else:
        lines.append(pad + _scalar(value))
    return "\n".join(lines)


def _nested(value):
    """A non-empty dict, or a list holding dicts or lists: written as a block."""
    if isinstance(value, dict):
        return bool(value)
    return isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value)


def _inline(value):
    if isinstance(value, list):
        return "[" + ", ".join(_inline(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_inline(item)}" for key, item in value.items()) + "}"
    return _scalar(value)


def merged(base, override):
    """base with override's keys laid over it, dicts merged key by key, None removing a key."""
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def listener(name, listen, table, **options):
    """One listeners[] entry; `listen` is an address or a list of them."""
    return {"name": name, "listen": listen if isinstance(listen, list) else [listen], "table": table, **options}


def route(host, **options):
    """One table entry: route("*.a.test", backend="a"), route("*", action="reject")..."""
    return {"host": host, **options}


def servers(*addresses, **options):
    """One backends entry."""
    return {"servers": list(addresses), **options}


def dns(port, **options):
    """The dns section for tests/support/dns_server.py on 127.0.0.1:port: quick timeouts (500 ms,
    2 tries), TTLs clamped to 1 s..300 s, negative answers kept 1 s; `options` override."""
    return {"servers": [f"127.0.0.1:{port}"], "timeout": "500ms", "tries": 2, "min_ttl": "1s", "max_ttl": "300s",
            "negative_ttl": "1s", **options}


def proxy_config(listeners, tables, backends=None, metrics_port=None, defaults=DEFAULTS, **top_level):
    """A config document as a dict: `defaults`, then the given sections and top-level keys
    (a dict merges into the default of the same key; None removes a key)."""
    document = {"listeners": listeners, "tables": tables}
    if backends:
        document["backends"] = backends
    if metrics_port is not None:
        document["metrics"] = {"listen": f"127.0.0.1:{metrics_port}"}
    return merged(merged(defaults, document), top_level)
