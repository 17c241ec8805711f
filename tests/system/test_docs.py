# The documentation kept in step with the code: --help and the man pages list the same options
# and commands; the JSON Schema has the validator's keys, ranges and enums and agrees with
# `wanbalancectl check`; wanbalance.json(5) documents every key; the catalog has every MESSAGE_ID.

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAN = REPO / "docs" / "man"
SCHEMA_PATH = REPO / "docs" / "wanbalance.schema.json"
EXAMPLE = REPO / "docs" / "examples" / "wanbalance.json"
CATALOG = REPO / "packaging" / "wanbalance.catalog"
OPTION = re.compile(r"^-{1,2}[a-zA-Z][\w-]*$")


# ---- reading the sources -------------------------------------------------------------------

def strip_comments(text: str) -> str:
    """JSON with // and /* */ comments (as wanbalanced reads it) → plain JSON."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def sections(scd: str) -> dict[str, list[str]]:
    """'# NAME' headings of an scdoc page → their lines."""
    out: dict[str, list[str]] = {}
    current = None
    for line in scd.splitlines():
        if line.startswith("# "):
            current = line[2:].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def term_options(lines: list[str], nested: bool = False) -> set[str]:
    """Options named in definition terms: lines starting with '*' (or a tab and '*')."""
    found = set()
    for line in lines:
        if line.startswith("*") or (nested and re.match(r"^\t\*-", line)):
            found |= set(re.findall(r"\*(-{1,2}[a-zA-Z][\w-]*)\*", line))
    return found


def help_block(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(title) + 1
    block = []
    for line in lines[start:]:
        if not line.strip():
            break
        block.append(line)
    return block


def help_options(lines: list[str]) -> set[str]:
    found = set()
    for line in lines:
        spec = re.split(r"\s{2,}", line.strip())[0]
        found |= {tok.rstrip(",") for tok in spec.split() if OPTION.match(tok.rstrip(","))}
    return found


def run(program: Path, *args: str) -> str:
    proc = subprocess.run([str(program), *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].split("/")[-1]]
    return node


def schema_paths(schema: dict) -> dict[str, dict]:
    """Every key as the man page names it ("wans[].name", "probe.interval_ms",
    "policies.NAME.last_resort") → its schema. The probe object of a WAN has the same keys as
    the global one: they are documented once, as probe.*."""
    paths: dict[str, dict] = {}

    def walk(node: dict, prefix: str) -> None:
        for name, sub in node.get("properties", {}).items():
            path = prefix + name
            paths[path] = sub
            target = resolve(schema, sub)
            if target.get("type") == "array" and "properties" in resolve(schema, target["items"]):
                walk(resolve(schema, target["items"]), path + "[].")
            elif "properties" in target and not (sub.get("$ref") == "#/$defs/probe" and prefix):
                walk(target, path + ".")
            elif isinstance(target.get("additionalProperties"), dict):  # an object of named things
                walk(resolve(schema, target["additionalProperties"]), path + ".NAME.")

    walk(schema, "")
    return paths


# ---- --help and the man pages ---------------------------------------------------------------

def test_wanbalanced_help_and_man_page_list_the_same_options(programs):
    text = run(programs["wanbalanced"], "--help")
    in_help = help_options(help_block(text, "Options:"))
    page = sections((MAN / "wanbalanced.8.scd").read_text())
    in_man = term_options(page["OPTIONS"])
    assert in_help == in_man
    assert {"--config", "--runtime-dir", "--verbose", "--help", "--version"} <= in_help
    synopsis = set(re.findall(r"\*(--[\w-]+)\*", "\n".join(page["SYNOPSIS"])))
    assert synopsis == {o for o in in_help if o.startswith("--")} - {"--help", "--version"}


def test_wanbalancectl_help_and_man_page_list_the_same_commands_and_options(programs):
    ctl = programs["wanbalancectl"]
    text = run(ctl, "--help")
    page = sections((MAN / "wanbalancectl.8.scd").read_text())
    assert help_options(help_block(text, "Options:")) == term_options(page["OPTIONS"])

    help_commands = [line.split()[0] for line in help_block(text, "Commands:")
                     if re.match(r"^  [a-z]", line)]
    man_commands: dict[str, list[str]] = {}
    current = None
    for line in page["COMMANDS"]:
        m = re.match(r"^\*([a-z]+)\*", line)
        if m:
            current = m[1]
            man_commands[current] = []
        if current:
            man_commands[current].append(line)
    assert sorted(help_commands) == sorted(man_commands)

    for command, lines in man_commands.items():
        usage = run(ctl, command, "--help")
        in_help = {m for m in re.findall(r"^\s+(--[\w-]+)", usage, re.M)}
        in_usage = set(re.findall(r"--[\w-]+", usage.splitlines()[0])) - {"--runtime-dir"}
        in_man = {o for o in term_options(lines, nested=True) if o.startswith("--")}
        assert in_help == in_usage == in_man, command
    assert {"--json", "--prometheus"} <= {o for o in term_options(man_commands["status"], True)}


def test_man_pages_render_without_complaint():
    if shutil.which("scdoc") is None:
        pytest.skip("needs scdoc")
    for page in MAN.glob("*.scd"):
        text = page.read_text()
        assert text.startswith(page.name.removesuffix(".scd").rsplit(".", 1)[0]
                               + "(" + page.name.split(".")[-2] + ")")
        proc = subprocess.run(["scdoc"], input=text, capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stderr == "", f"{page.name}: {proc.stderr}"
        if shutil.which("man") is None:
            continue
        # troff's own warnings too, at the usual 80 columns ("can't break line": a table
        # too wide for the terminal).
        with tempfile.NamedTemporaryFile("w", suffix="." + page.name.split(".")[-2]) as out:
            out.write(proc.stdout)
            out.flush()
            env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "MANWIDTH": "80"}
            rendered = subprocess.run(["man", "--warnings=all", "-l", out.name], capture_output=True,
                                      text=True, env=env)
        assert rendered.returncode == 0 and rendered.stderr == "", f"{page.name}: {rendered.stderr}"


def test_wanbalanced_page_lists_every_message_id():
    ids = message_ids()
    text = (MAN / "wanbalanced.8.scd").read_text()
    for kind, mid in ids.items():
        assert mid in text, kind


# ---- the configuration: schema, validator, man page -----------------------------------------

CONFIG_SOURCES = ("validate.cpp", "validate.hpp", "rules_read.cpp", "config.hpp")


def config_text() -> str:
    return "".join((REPO / "config" / name).read_text() for name in CONFIG_SOURCES)


def cpp_constants() -> dict[str, int]:
    text = config_text()
    return {m[1]: int(m[2], 0) for m in re.finditer(r"constexpr \w+ (k\w+) = (\w+);", text)
            if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", m[2])}


def cpp_key_list(name: str) -> list[str]:
    text = config_text()
    m = re.search(r"\b" + name + r"\[\] = \{([^}]*)\}", text)
    assert m, name
    return re.findall(r'"([^"]+)"', m[1])


def test_schema_has_the_validators_keys_and_required_keys(schema):
    defs = schema["$defs"]
    assert set(schema["properties"]) == set(cpp_key_list("kTopKeys"))
    assert set(schema["required"]) == set(cpp_key_list("kTopRequired"))
    assert set(defs["wan"]["properties"]) == set(cpp_key_list("kWanKeys"))
    assert set(defs["wan"]["required"]) == set(cpp_key_list("kWanRequired"))
    assert set(defs["probe"]["properties"]) == set(cpp_key_list("kProbeKeys"))
    assert set(schema["properties"]["balance"]["properties"]) == set(cpp_key_list("kBalanceKeys"))
    for name, keys in (("policy", "kPolicyKeys"), ("member", "kMemberKeys"), ("rule", "kRuleKeys")):
        assert list(defs[name]["properties"]) == cpp_key_list(keys), name
        assert set(defs[name]["required"]) == set(cpp_key_list(keys.replace("Keys", "Required"))), name
    for node in (schema, defs["wan"], defs["probe"], schema["properties"]["balance"], defs["policy"],
                 defs["member"], defs["rule"]):
        assert node["additionalProperties"] is False


def test_schema_has_the_validators_ranges_and_enums(schema):
    text = (REPO / "config" / "validate.cpp").read_text()
    consts = cpp_constants()
    value = lambda token: consts[token] if token in consts else int(token, 0)  # noqa: E731
    ranges = {}
    for m in re.finditer(r"read_unsigned\(\s*(probe|wan)\.(\w+),\s*[\w.()]+,\s*at,\s*(\w+),\s*(\w+),", text):
        ranges[(m[1], m[2])] = (value(m[3]), value(m[4]))
    assert len(ranges) == 7, ranges  # weight, tier and the five probe integers
    for (owner, key), (lo, hi) in ranges.items():
        node = schema["$defs"][owner]["properties"][key]
        assert (node["minimum"], node["maximum"]) == (lo, hi), key
    m = re.search(r"read_integer\(value, at, (\w+), (\w+), report\)", text)
    rule = schema["properties"]["rule_priority"]
    assert (rule["minimum"], rule["maximum"]) == (value(m[1]), value(m[2]))
    targets = schema["$defs"]["probe"]["properties"]["targets"]
    assert targets["maxItems"] == consts["kMaxProbeTargets"]
    assert schema["properties"]["wans"]["maxItems"] == consts["kMaxWans"]
    names = re.findall(r'\{Classifier::\w+, "([^"]+)"\}', (REPO / "config" / "config.cpp").read_text())
    assert schema["properties"]["balance"]["properties"]["classifier"]["enum"] == names
    rules_text = (REPO / "config" / "rules_read.cpp").read_text()
    member = schema["$defs"]["member"]["properties"]
    for key in ("weight", "tier"):
        m = re.search(r"read_unsigned\(member\." + key + r", value, at, (\w+), (\w+), report\)", rules_text)
        assert (member[key]["minimum"], member[key]["maximum"]) == (value(m[1]), value(m[2])), key
    rule = schema["$defs"]["rule"]["properties"]
    m = re.search(r"read_unsigned\(timeout, value, at, (\w+), (\w+), report\)", rules_text)
    timeout = rule["sticky_timeout_s"]
    assert (timeout["minimum"], timeout["maximum"]) == (value(m[1]), value(m[2]))
    assert timeout["default"] == consts["kDefaultStickyTimeoutS"]
    assert schema["properties"]["rules"]["maxItems"] == consts["kMaxRules"]
    assert sorted(rule["proto"]["enum"]) == sorted(cpp_key_list("kProtocolNames"))
    assert rule["sticky"]["enum"] == cpp_key_list("kStickyNames")
    assert schema["$defs"]["policy"]["properties"]["last_resort"]["enum"] == cpp_key_list("kLastResortNames")
    defaults = schema["$defs"]["probe"]["properties"]
    assert schema["properties"]["mark_mask"]["default"] == hex(consts["kDefaultMarkMask"])
    assert schema["properties"]["rule_priority"]["default"] == consts["kDefaultRulePriority"]
    assert defaults["interval_ms"]["default"] == 300 and defaults["timeout_ms"]["default"] == 600


def test_man_page_documents_every_key_the_schema_knows(schema):
    page = sections((MAN / "wanbalance.json.5.scd").read_text())
    terms = {}
    for line in page["KEYS"]:
        m = re.match(r"^\*([A-Za-z0-9_\[\].]+)\* \(([^)]*)\)", line)
        if m:
            terms[m[1]] = m[2]
    paths = schema_paths(schema)
    assert set(terms) == set(paths)
    for path, node in paths.items():
        node = {**resolve(schema, node), **node}
        if "default" in node:
            default = str(node["default"]).lower() if isinstance(node["default"], bool) else \
                str(node["default"])
            term = terms[path].replace("*", "").replace('"', "")
            assert f"default {default}" in term, path
        if node.get("type") == "integer" and node.get("maximum", 1 << 40) < 1 << 20:
            assert f"{node['minimum']}-{node['maximum']}" in terms[path], path
    text = "\n".join(page["KEYS"])
    for name in schema["properties"]["balance"]["properties"]["classifier"]["enum"]:
        assert f"*{name}*" in text, name
    rule = schema["$defs"]["rule"]["properties"]
    for name in (rule["proto"]["enum"] + rule["sticky"]["enum"]
                 + schema["$defs"]["policy"]["properties"]["last_resort"]["enum"]):
        assert f"*{name}*" in text, name


# Rules that span keys, or JSON details a schema cannot see: `check` rejects these and the
# schema accepts them (its description says so).
CROSS_KEY = {
    "duplicate WAN name": lambda c: c["wans"].append({**c["wans"][0], "interface": "eth8"}),
    "duplicate WAN interface": lambda c: c["wans"].append({**c["wans"][0], "name": "b"}),
    "LAN is a WAN": lambda c: c.update(lans=["eth0"]),
    "snat6 without gateway6": lambda c: c["wans"][0].update(snat6="2001:db8::10"),
    "ha_pair without snat": lambda c: c.update(ha_pair=True),
    "ha_pair without snat6 on a WAN with gateway6": lambda c: (
        c.update(ha_pair=True), c["wans"][0].update(snat="192.0.2.10", gateway6="auto")),
    "mark outside mark_mask": lambda c: c["wans"][0].update(mark="0x1"),
    "min_targets_up above the targets": lambda c: c.update(probe={"min_targets_up": 2}),
    "min_targets_up above the IPv6 targets": lambda c: (
        c["wans"][0].update(gateway6="auto"),
        c.update(probe={"targets": ["192.0.2.1", "192.0.2.2"], "min_targets_up": 2})),
    "the same IPv6 target written twice": lambda c: c.update(probe={"targets": ["2001:db8::1", "2001:db8:0::1"]}),
    "the same dns target with its name in another case": lambda c: c.update(probe={"targets": [
        {"dns": "192.0.2.53", "name": "example.com"}, {"dns": "192.0.2.53", "name": "Example.COM."}]}),
    "the same tcp target written two ways": lambda c: c.update(probe={"targets": [
        {"tcp": "[2001:db8::1]:443"}, {"tcp": "[2001:db8:0::1]:443"}]}),
    "rule_priority without room": lambda c: c.update(rule_priority=32765),
    "integer written as 1.0": lambda c: c["wans"][0].update(weight=1.0),
    "more WANs than the mask has marks": lambda c: c.update(
        mark_mask="0x1", wans=[c["wans"][0], {"name": "b", "interface": "eth8", "gateway": "auto"}]),
    "a member that is not a WAN": lambda c: c.update(policies={"p": {"members": [{"wan": "zz"}]}}),
    "a WAN twice in a policy": lambda c: c.update(
        policies={"p": {"members": [{"wan": "a"}, {"wan": "a", "tier": 1}]}}),
    "a rule naming a policy that does not exist": lambda c: c.update(rules=[a_rule(policy="nope")]),
    "a rule naming a LAN that is not one": lambda c: c.update(rules=[a_rule(iif=["eth9"])]),
    "two rules of one name": lambda c: c.update(rules=[a_rule(), a_rule()]),
    "a prefix with host bits set": lambda c: c.update(rules=[a_rule(dst=["10.1.2.3/8"])]),
    "an IPv6 prefix with host bits set": lambda c: c.update(rules=[a_rule(dst=["2001:db8::1/32"])]),
    "a port range that runs backwards": lambda c: c.update(rules=[a_rule(proto="tcp", dst_port=["2-1"])]),
    "the same address written two ways": lambda c: c.update(rules=[a_rule(dst=["192.0.2.1", "192.0.2.1/32"])]),
    "the same port written two ways": lambda c: c.update(rules=[a_rule(proto="udp", dst_port=[53, "53"])]),
    "src and dst of different families": lambda c: c.update(
        rules=[a_rule(src=["10.0.0.0/8"], dst=["2001:db8::/32"])]),
    "icmp to IPv6 addresses": lambda c: c.update(rules=[a_rule(proto="icmp", dst=["2001:db8::/32"])]),
    "no mark left for main": lambda c: c.update(mark_mask="0x1", rules=[a_rule(policy="main")]),
    "too many rule map elements": lambda c: c.update(rules=[a_rule(
        src=[f"10.{i}.0.1" for i in range(256)], dst=[f"172.{16 + i // 256}.{i % 256}.1" for i in range(257)])]),
}


def a_rule(**keys) -> dict:
    return {"name": "r", "policy": "balanced", **keys}


def base_config() -> dict:
    return {"wans": [{"name": "a", "interface": "eth0", "gateway": "192.0.2.1"}],
            "lans": ["eth1"]}


def mutations():
    """(description, function changing a base config) pairs around every key's limits."""
    ints = {  # where → (low, high)
        ("wan", "weight"): (1, 1000), ("wan", "tier"): (0, 255),
        ("probe", "interval_ms"): (50, 60000), ("probe", "timeout_ms"): (50, 60000),
        ("probe", "down_after"): (1, 100), ("probe", "up_after"): (1, 100),
    }
    sixteen = [f"192.0.2.{i}" for i in range(1, 17)]
    for (owner, key), (lo, hi) in ints.items():
        for v in (lo - 1, lo, hi, hi + 1, -1, "1", 1.5, True, None):
            def f(c, owner=owner, key=key, v=v):
                target = {"wan": c["wans"][0], "top": c}.get(owner)
                if owner == "probe":
                    c["probe"] = {key: v}
                else:
                    target[key] = v
            yield f"{owner}.{key}={v!r}", f
    # 32765 is the schema's maximum, but one WAN's rule and the balanced table's must fit too:
    # see CROSS_KEY.
    for v in (0, 1, 32763, 32766, -1, "1", 1.5, None):
        yield f"rule_priority={v!r}", lambda c, v=v: c.update(rule_priority=v)
    for v in (0, 1, 16, 17, "2"):
        yield f"min_targets_up={v!r}", lambda c, v=v: c.update(
            probe={"targets": sixteen, "min_targets_up": v})
    for v in ([], sixteen, sixteen + ["192.0.2.99"], ["192.0.2.1", "192.0.2.1"], ["x"], "192.0.2.1"):
        yield f"targets={v!r}", lambda c, v=v: c["wans"][0].update(probe={"targets": v})
    long_name = ".".join(["a" * 63] * 3 + ["a" * 61])  # 253 characters
    for v in ({"tcp": "192.0.2.1:443"}, {"tcp": "192.0.2.1:1"}, {"tcp": "192.0.2.1:65535"},
              {"tcp": "192.0.2.1:0"}, {"tcp": "192.0.2.1:65536"}, {"tcp": "192.0.2.1:0443"},
              {"tcp": "192.0.2.1"}, {"tcp": "192.0.2.1:"}, {"tcp": "192.0.2.1:https"}, {"tcp": "[192.0.2.1]:80"},
              {"tcp": "[2001:db8::1]:443"}, {"tcp": "2001:db8::1:443"}, {"tcp": "[2001:db8::1]"},
              {"tcp": "[fe80::1]:22"}, {"tcp": "[::1]:80"}, {"tcp": "[ff02::1]:80"}, {"tcp": "127.0.0.1:80"},
              {"tcp": "224.0.0.1:80"}, {"tcp": "example.com:443"}, {"tcp": 443}, {"tcp": "192.0.2.1:443", "name": "x"},
              {"tcp": "192.0.2.1:443", "dns": "192.0.2.1"}, {"tcp": "192.0.2.1:443", "port": 1}, {},
              {"dns": "192.0.2.53", "name": "example.com"}, {"dns": "192.0.2.53", "name": "example.com."},
              {"dns": "2001:db8::53", "name": "a_b-9.Example"}, {"dns": "192.0.2.53"}, {"name": "example.com"},
              {"dns": "192.0.2.53", "name": ""}, {"dns": "192.0.2.53", "name": "."},
              {"dns": "192.0.2.53", "name": "a..b"}, {"dns": "192.0.2.53", "name": "a b"},
              {"dns": "192.0.2.53", "name": "a" * 63}, {"dns": "192.0.2.53", "name": "a" * 64},
              {"dns": "192.0.2.53", "name": long_name}, {"dns": "192.0.2.53", "name": long_name + "a"},
              {"dns": "192.0.2.53", "name": long_name + "."}, {"dns": "192.0.2.53", "name": 5},
              {"dns": "127.0.0.53", "name": "x"}, {"dns": "192.0.2.53:53", "name": "x"}, {"dns": 53, "name": "x"}):
        yield f"targets=[{v!r}]", lambda c, v=v: (c["wans"][0].update(gateway6="auto"),
                                                  c["wans"][0].update(probe={"targets": ["192.0.2.9", v]}))
    yield "targets: the same tcp target twice", lambda c: c.update(
        probe={"targets": [{"tcp": "192.0.2.1:443"}, {"tcp": "192.0.2.1:443"}]})
    yield "targets: three kinds of one address", lambda c: c.update(
        probe={"targets": ["192.0.2.1", {"tcp": "192.0.2.1:443"}, {"dns": "192.0.2.1", "name": "x"}]})
    for v in ("a", "a" * 15, "a" * 16, "", "Abc", "a.b", "a_b-9", 7):
        yield f"name={v!r}", lambda c, v=v: c["wans"][0].update(name=v)
    for v in ("eth0.5", "x" * 15, "x" * 16, "", "a/b", "a b", "a:b", "a%b", ".", "..", "...",
              "a\tb", "a\x7fb", "é", 3):
        yield f"interface={v!r}", lambda c, v=v: c["wans"][0].update(interface=v)
        yield f"lan={v!r}", lambda c, v=v: c.update(lans=[v])
    for v in ("auto", "1.2.3.4", "0.0.0.0", "255.255.255.255", "01.2.3.4", "256.1.1.1", "1.2.3",
              "1.2.3.4.5", " 1.2.3.4", "1.2.3.4 ", "Auto", "1.2.3.-4", 16909060):
        yield f"gateway={v!r}", lambda c, v=v: c["wans"][0].update(gateway=v)
    for v in ("auto", "fe80::1", "2001:db8:1::1", "::ffff:192.0.2.1", "1:2:3:4:5:6:7:8", "::", "::1",
              "0:0::01", "ff02::2", "FF0E::1", "ff::1", "fe80::1%eth0", "2001:db8::/64", "1::2::3",
              "1:2:3:4:5:6:7:8:9", "12345::", "192.0.2.1", "Auto", " ::2", 6):
        yield f"gateway6={v!r}", lambda c, v=v: c["wans"][0].update(gateway6=v)
    for v in (["2001:db8:ff::53", "192.0.2.53"], ["ff02::1"], ["::"], ["fe80::1"], ["2001:db8::g"]):
        yield f"targets6={v!r}", lambda c, v=v: (c["wans"][0].update(gateway6="auto"),
                                                 c["wans"][0].update(probe={"targets": v}))
    for v in (0, 1, 252, 253, 254, 255, 256, 4294967295, 4294967296, "101"):
        yield f"table={v!r}", lambda c, v=v: c["wans"][0].update(table=v)
    for v in ("0x100", "0x0100", "0X100", "0x", "0x0", "0x000", "0xffffffff", "0x1ffffffff",
              "0x00000000ff", "0xg", "100", 256, 0, 4294967295, 4294967296, -1, True):
        yield f"mark={v!r}", lambda c, v=v: (c.update(mark_mask="0xffffffff"),
                                             c["wans"][0].update(mark=v))
    for v in ("0x3f00", "0x0", "0x", "3f00", "0x1ffffffff", "0x0000003f00", "0xFF00", 16128):
        yield f"mark_mask={v!r}", lambda c, v=v: c.update(mark_mask=v)
    for v in ("/x", "/", "x", "", "/a\nb", "/a\x1fb", 1):
        yield f"hooks_dir={v!r}", lambda c, v=v: c.update(hooks_dir=v)
    for v in ("round-robin", "src-address", "both", "Round-Robin", 1):
        yield f"classifier={v!r}", lambda c, v=v: c.update(balance={"classifier": v})
    for v in (True, False, "true", 1, None):
        yield f"masquerade={v!r}", lambda c, v=v: c.update(masquerade=v)
        yield f"flush_conntrack={v!r}", lambda c, v=v: c.update(flush_conntrack=v)
        yield f"ha_pair={v!r}", lambda c, v=v: (c.update(ha_pair=v), c["wans"][0].update(snat="192.0.2.10"))
    for v in ("192.0.2.10", "0.0.0.0", "224.0.0.18", "255.255.255.255", "127.0.0.1", "01.2.3.4", "2001:db8::1", 5):
        yield f"snat={v!r}", lambda c, v=v: c["wans"][0].update(snat=v)
    for v in ("2001:db8::10", "fe80::10", "FE80::1", "::", "::1", "ff02::12", "192.0.2.10", "2001:db8::g"):
        yield f"snat6={v!r}", lambda c, v=v: c["wans"][0].update(gateway6="auto", snat6=v)
    yield "balance={}", lambda c: c.update(balance={})
    yield "probe={}", lambda c: c.update(probe={})
    yield "unknown top key", lambda c: c.update(bogus=1)
    yield "unknown wan key", lambda c: c["wans"][0].update(gw="auto")
    yield "unknown probe key", lambda c: c.update(probe={"interval": 1})
    yield "unknown balance key", lambda c: c.update(balance={"mode": "x"})
    yield "probe key at the top", lambda c: c.update(interval_ms=300)
    yield "no wans", lambda c: c.pop("wans")
    yield "no lans", lambda c: c.pop("lans")
    yield "wans empty", lambda c: c.update(wans=[])
    yield "lans empty", lambda c: c.update(lans=[])
    yield "lans twice the same", lambda c: c.update(lans=["eth1", "eth1"])
    yield "wans not an array", lambda c: c.update(wans={})
    yield "wan not an object", lambda c: c.update(wans=["a"])
    yield "no gateway", lambda c: c["wans"][0].pop("gateway")
    yield "63 WANs", lambda c: c.update(wans=[
        {"name": f"w{i}", "interface": f"eth{i + 10}", "gateway": "auto"} for i in range(63)])
    yield "64 WANs", lambda c: c.update(wans=[
        {"name": f"w{i}", "interface": f"eth{i + 10}", "gateway": "auto"} for i in range(64)])
    yield "top level array", lambda c: (c.clear(), c.update(__array__=True))
    yield from rule_mutations()


def rule_mutations():
    """Policies and rules around their limits (the base has WAN "a" and LAN "eth1")."""
    def policy(**keys):
        return {"p": {"members": [{"wan": "a"}], **keys}}
    for v in ({}, [], "p", None):
        yield f"policies={v!r}", lambda c, v=v: c.update(policies=v)
    for name in ("p", "a" * 32, "a" * 33, "", "P", "main", "balanced", "a.b", "a_b-9"):
        yield f"policy name {name!r}", lambda c, name=name: c.update(
            policies={name: {"members": [{"wan": "a"}]}})
    for v in ([], "a", ["a"], [{}], [{"wan": 1}], [{"wan": "a", "x": 1}], [{"wan": "A"}]):
        yield f"members={v!r}", lambda c, v=v: c.update(policies={"p": {"members": v}})
    for key, values in (("weight", (0, 1, 1000, 1001, "1", 1.5)), ("tier", (-1, 0, 255, 256, True))):
        for v in values:
            yield f"member {key}={v!r}", lambda c, key=key, v=v: c.update(
                policies={"p": {"members": [{"wan": "a", key: v}]}})
    for v in ("balanced", "main", "unreachable", "drop", "Main", 1, None):
        yield f"last_resort={v!r}", lambda c, v=v: c.update(policies=policy(last_resort=v))
    yield "policy without members", lambda c: c.update(policies={"p": {}})
    yield "policy with an unknown key", lambda c: c.update(policies=policy(fallback="main"))
    yield "a policy a rule uses", lambda c: c.update(policies=policy(), rules=[a_rule(policy="p")])

    for v in ({}, [], [1], [{}], "r"):
        yield f"rules={v!r}", lambda c, v=v: c.update(rules=v)
    yield "4096 rules", lambda c: c.update(rules=[a_rule(name=f"r{i}", policy="main") for i in range(4096)])
    yield "4097 rules", lambda c: c.update(rules=[a_rule(name=f"r{i}", policy="main") for i in range(4097)])
    yield "rule without name", lambda c: c.update(rules=[{"policy": "main"}])
    yield "rule without policy", lambda c: c.update(rules=[{"name": "r"}])
    yield "rule with an unknown key", lambda c: c.update(rules=[a_rule(dts=["10.0.0.0/8"])])
    for v in ("r", "a" * 32, "a" * 33, "", "Web", "a.b", 1):
        yield f"rule name={v!r}", lambda c, v=v: c.update(rules=[a_rule(name=v)])
    for v in ("10.0.0.0/8", "0.0.0.0/0", "192.0.2.1", "192.0.2.1/32", "10.0.0.0/33", "10.0.0.0/08",
              "10.0.0.0/", "10.0.0/8", "01.0.0.0/8", "2001:db8::/32", "::/0", "2001:db8::1",
              "2001:db8::/129", "2001:db8::/032", "fe80::1%eth0", "::ffff:192.0.2.0/120", " 10.0.0.0/8", 10):
        yield f"dst=[{v!r}]", lambda c, v=v: c.update(rules=[a_rule(dst=[v])])
    for v in ([], "10.0.0.0/8", ["10.0.0.0/8", "10.0.0.0/8"], None):
        yield f"src={v!r}", lambda c, v=v: c.update(rules=[a_rule(src=v)])
    for v in ("tcp", "udp", "icmp", "icmpv6", "sctp", "TCP", "icmp6", 6, None):
        yield f"proto={v!r}", lambda c, v=v: c.update(rules=[a_rule(proto=v)])
    for v in (1, 65535, 65536, 0, -1, "1", "65535", "65536", "0", "1-65535", "10000-20000", "0-10",
              "0443", "443 ", "1-2-3", "-5", "", 1.5, True, [443]):
        yield f"dst_port=[{v!r}]", lambda c, v=v: c.update(rules=[a_rule(proto="tcp", dst_port=[v])])
    for v in ([], 443, [443, 443]):
        yield f"src_port={v!r}", lambda c, v=v: c.update(rules=[a_rule(proto="udp", src_port=v)])
    yield "ports without proto", lambda c: c.update(rules=[a_rule(dst_port=[443])])
    yield "ports with icmp", lambda c: c.update(rules=[a_rule(proto="icmp", src_port=[1])])
    yield "ports with sctp", lambda c: c.update(rules=[a_rule(proto="sctp", src_port=[1])])
    for v in (["eth1"], [], ["eth1", "eth1"], [1], ["a/b"], "eth1"):
        yield f"iif={v!r}", lambda c, v=v: c.update(rules=[a_rule(iif=v)])
    for v in ("balanced", "main", "", "Main", 1, None):
        yield f"rule policy={v!r}", lambda c, v=v: c.update(rules=[a_rule(policy=v)])
    for v in ("none", "src", "src-dst", "src_dst", "", True):
        yield f"sticky={v!r}", lambda c, v=v: c.update(rules=[a_rule(sticky=v)])
        yield f"sticky={v!r} on main", lambda c, v=v: c.update(rules=[a_rule(policy="main", sticky=v)])
    for v in (0, 1, 600, 604800, 604801, "600", 1.5):
        yield f"sticky_timeout_s={v!r}", lambda c, v=v: c.update(
            rules=[a_rule(sticky="src", sticky_timeout_s=v)])


def check_verdict(ctl: Path, config: dict, tmp: Path) -> bool:
    path = tmp / "c.json"
    path.write_text("[]" if config.get("__array__") else json.dumps(config))
    proc = subprocess.run([str(ctl), "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode in (0, 78), proc.stderr
    return proc.returncode == 0


def test_schema_and_check_agree_on_every_key_at_its_limits(schema, programs):
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(schema)
    disagreements = []
    with tempfile.TemporaryDirectory() as tmp:
        for what, mutate in mutations():
            config = base_config()
            mutate(config)
            document = [] if config.get("__array__") else config
            by_schema = validator.is_valid(document)
            by_check = check_verdict(programs["wanbalancectl"], config, Path(tmp))
            if by_schema != by_check:
                disagreements.append(f"{what}: check {'accepts' if by_check else 'rejects'}, "
                                     f"schema {'accepts' if by_schema else 'rejects'}")
        assert not disagreements, "\n".join(disagreements)
        for what, mutate in CROSS_KEY.items():
            config = base_config()
            mutate(config)
            assert validator.is_valid(config), what
            assert not check_verdict(programs["wanbalancectl"], config, Path(tmp)), what


def test_shipped_configs_are_valid_by_schema_and_check(schema, programs):
    jsonschema = pytest.importorskip("jsonschema")
    files = [EXAMPLE, *sorted((REPO / "tests" / "configs" / "good").glob("*.json"))]
    for path in files:
        jsonschema.validate(json.loads(strip_comments(path.read_text())), schema,
                            cls=jsonschema.Draft202012Validator)
        proc = subprocess.run([str(programs["wanbalancectl"]), "check", "--config", str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{path}: {proc.stderr}"


def test_example_is_the_article(programs):
    config = json.loads(strip_comments(EXAMPLE.read_text()))
    assert [(w["name"], w["interface"]) for w in config["wans"]] == [("charter", "ether1"),
                                                                     ("integra", "ether2")]
    assert config["lans"] == ["ether3"]
    assert config["balance"]["classifier"] == "both-addresses-and-ports"


# ---- the journal catalog ---------------------------------------------------------------------

def message_ids() -> dict[str, str]:
    text = (REPO / "base" / "log_event.hpp").read_text()
    return dict(re.findall(r'(kMessage\w+) = "([0-9a-f]{32})"', text))


def catalog_entries() -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    current = None
    for line in CATALOG.read_text().splitlines():
        m = re.match(r"^-- ([0-9a-f]{32})$", line)
        if m:
            current = m[1]
            assert current not in entries, f"{current} twice"
            entries[current] = []
        elif current:
            entries[current].append(line)
    return entries


def test_catalog_explains_every_message_id():
    ids = message_ids()
    assert len(ids) == 6
    entries = catalog_entries()
    assert set(entries) == set(ids.values())
    fields = set(re.findall(r'"(WANBALANCE_\w+)=', (REPO / "daemon" / "log.cpp").read_text()))
    pages = {p.name.removesuffix(".scd") for p in MAN.glob("*.scd")}
    for mid, lines in entries.items():
        header = {}
        for line in lines:
            if not line:
                break
            key, value = line.split(": ", 1)
            header.setdefault(key, []).append(value)
        assert set(header) == {"Subject", "Defined-By", "Documentation"}, mid
        assert header["Defined-By"] == ["wanbalance"]
        for doc in header["Documentation"]:
            m = re.fullmatch(r"man:([\w.]+)\((\d)\)", doc)
            assert m and f"{m[1]}.{m[2]}" in pages, doc
        body = "\n".join(lines)
        assert len(body) > 300, f"{mid}: the body should help"
        assert set(re.findall(r"@(\w+)@", body)) <= fields, mid


def test_catalog_compiles_with_journalctl(tmp_path):
    if shutil.which("journalctl") is None:
        pytest.skip("needs journalctl")
    catalog_dir = tmp_path / "usr" / "lib" / "systemd" / "catalog"
    catalog_dir.mkdir(parents=True)
    shutil.copy(CATALOG, catalog_dir)
    proc = subprocess.run(["journalctl", f"--root={tmp_path}", "--update-catalog"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    listed = subprocess.run(["journalctl", f"--root={tmp_path}", "--list-catalog"],
                            capture_output=True, text=True, check=True).stdout
    for mid in message_ids().values():
        assert re.search(rf"^{mid} wanbalance: ", listed, re.M), listed
