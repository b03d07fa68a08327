#!/usr/bin/env python3
"""The fault-injection soak (run through scripts/soak, which brings the stack up and builds).

Sustained signed WhatsApp load against a dev server on the local stack, with the Graph API
faked by a small server that logs every send and posts Meta's status webhooks back (with the
send's `biz_opaque_callback_data`), while faults are injected: SIGKILL of the server and a
restart, PostgreSQL and PostgREST restarts, Graph 5xx / 429 / timeouts (not accepted, or
accepted and then no answer) / connection resets, duplicate concurrent redeliveries, bursts of
bubbles from one contact and overlapping cron runs. A delivery that is not answered 200 is
delivered again, as Meta does. Then the crons are driven until nothing is pending (the clock
of backoffs and reminders is moved forward in the database) and the invariants are checked
from the database and the fake's log. Prints the figures (also as one JSON line) and exits 1
on any violation. Uses its own org, so it runs on any stack beside other data.
"""

import argparse
import concurrent.futures
import hashlib
import hmac
import http.server
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_SECRET = "soak-app-secret"
CRON_SECRET = "soak-cron-secret"
GRAPH_TIMEOUT_MS = 1500
FAULTS = ["kill", "postgres", "postgrest", "graph_5xx", "graph_429", "graph_timeout",
          "graph_reset", "graph_accepted_no_answer", "duplicates", "overlapping_crons"]
TEXTS = ["hi", "help", "what can you do?", "remind me to drink water in 1 minute",
         "spent 4.50 on coffee", "thanks", "hola", "remind me to stretch in 2 minutes"]


def log(*parts):
    print("soak:", *parts, flush=True)


def psql(sql, retries=60):
    """Runs SQL on DATABASE_URL and returns its text output (retried while PostgreSQL restarts)."""
    for attempt in range(retries):
        done = subprocess.run(
            ["psql", os.environ["DATABASE_URL"], "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
             "-c", sql], capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.strip()
        if attempt == retries - 1:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        time.sleep(0.5)


def rows(sql):
    return json.loads(psql(f"select coalesce(json_agg(t), '[]') from ({sql}) t"))


def sign(body):
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


def post(url, body, headers, timeout=10):
    """POSTs bytes; returns the HTTP status, or 0 when the connection failed."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0


def envelope(phone_number_id, value):
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550100099", "phone_number_id": phone_number_id},
             **value}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "200000000000099", "changes": [{"value": value, "field": "messages"}]}]}


class QuietServer(http.server.ThreadingHTTPServer):
    """A client that gave up (a timed-out send) is expected here: no traceback for it."""

    def handle_error(self, request, client_address):
        pass


class FakeGraph:
    """The Graph API's send endpoint: logs every send it accepts, answers as Meta does (or
    with the fault of the moment), and posts the sent and delivered statuses back."""

    def __init__(self, webhook_url, phone_number_id):
        self.webhook_url = webhook_url
        self.phone_number_id = phone_number_id
        self.lock = threading.Lock()
        self.mode = None
        self.accepted = []  # {seq, to, text, callback, wamid}
        self.refused = Counter()
        self.statuses = []  # [due, body]
        self.server = None

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode

    def accept(self, body):
        wamid = "wamid.soak." + uuid.uuid4().hex
        # A phone number in `to`; a username-only person's BSUID in `recipient`.
        to = body.get("to") or body.get("recipient")
        kind = body.get("type")
        text = {"text": lambda: body.get("text", {}).get("body"),
                "interactive": lambda: "interactive:" + str(body.get("interactive", {}).get("body", {}).get("text")),
                "reaction": lambda: "reaction:" + str(body.get("reaction", {}).get("emoji")),
                }.get(kind, lambda: f"template:{body.get('template', {}).get('name')}")()
        callback = body.get("biz_opaque_callback_data")
        with self.lock:
            self.accepted.append({"seq": len(self.accepted), "to": to, "text": text,
                                  "callback": callback, "wamid": wamid, "at": time.time()})
            for status, delay in (("sent", random.uniform(0.2, 1.0)), ("delivered", random.uniform(1.0, 2.5))):
                item = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
                        ("recipient_user_id" if to.startswith("US.") else "recipient_id"): to,
                        "conversation": {"id": uuid.uuid4().hex, "origin": {"type": "service"}},
                        "pricing": {"billable": True, "pricing_model": "PMP",
                                    "type": "free_customer_service", "category": "service"}}
                if callback is not None:
                    item["biz_opaque_callback_data"] = callback
                payload = json.dumps(envelope(self.phone_number_id, {"statuses": [item]})).encode()
                self.statuses.append([time.time() + delay, payload])
        return wamid

    def handler(self):
        graph = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, code, value):
                data = json.dumps(value).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def reset(self):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if body.get("status") == "read":
                    return self.answer(200, {"success": True})
                with graph.lock:
                    mode = graph.mode
                if mode:
                    graph.refused[mode] += 1
                if mode == "graph_reset":
                    return self.reset()
                if mode == "graph_5xx":
                    return self.answer(500, {"error": {"message": "(#131000) Something went wrong",
                                                       "type": "OAuthException", "code": 131000,
                                                       "fbtrace_id": "Soak"}})
                if mode == "graph_429":
                    return self.answer(429, {"error": {"message": "(#130429) Rate limit hit",
                                                       "type": "OAuthException", "code": 130429,
                                                       "fbtrace_id": "Soak"}})
                if mode == "graph_timeout":
                    time.sleep(GRAPH_TIMEOUT_MS / 1000 + 1)
                    return self.reset()
                wamid = graph.accept(body)
                if mode == "graph_accepted_no_answer":
                    time.sleep(GRAPH_TIMEOUT_MS / 1000 + 1)
                    return self.reset()
                self.answer(200, {"messaging_product": "whatsapp",
                                  "contacts": [{"input": to,
                                                ("user_id" if to.startswith("US.") else "wa_id"): to}],
                                  "messages": [{"id": wamid}]})

        return Handler

    def start(self):
        self.server = QuietServer(("127.0.0.1", 0), self.handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self.post_statuses, daemon=True).start()
        return self.server.server_address[1]

    def post_statuses(self):
        """Meta's status webhooks, delivered again until answered 200."""
        while True:
            now = time.time()
            with self.lock:
                due = [s for s in self.statuses if s[0] <= now]
            for item in due:
                if post(self.webhook_url, item[1], {"Content-Type": "application/json",
                                                    "X-Hub-Signature-256": sign(item[1])}, 5) == 200:
                    with self.lock:
                        self.statuses.remove(item)
                else:
                    item[0] = time.time() + 1
            time.sleep(0.1)

    def pending_statuses(self):
        with self.lock:
            return len(self.statuses)


class Server:
    """The dev server, started, SIGKILLed and restarted."""

    def __init__(self, port, graph_port, log_path):
        self.port = port
        self.env = dict(os.environ, PORT=str(port), APP_ENV="test", LOG_LEVEL="warn",
                        WHATSAPP_APP_SECRET=APP_SECRET, WHATSAPP_VERIFY_TOKEN="soak",
                        WHATSAPP_ACCESS_TOKEN="soak-token", CRON_SECRET=CRON_SECRET,
                        GRAPH_API_BASE_URL=f"http://127.0.0.1:{graph_port}",
                        GRAPH_TIMEOUT_MS=str(GRAPH_TIMEOUT_MS), GRAPH_RETRY_BASE_MS="100",
                        PROCESSING_LEASE_SECONDS="10", CRON_LEASE_SECONDS="30",
                        OUTCOME_GRACE_SECONDS="30",
                        DATABASE_TIMEOUT_MS="3000", HEALTH_CACHE_MS="500")
        self.env.update({k[len("SOAK_ENV_"):]: v for k, v in os.environ.items() if k.startswith("SOAK_ENV_")})
        self.log = open(log_path, "ab")
        self.process = None
        self.lock = threading.Lock()

    def start(self):
        with self.lock:
            self.process = subprocess.Popen([os.path.join(ROOT, "target/debug/dev-server")],
                                            env=self.env, stdout=self.log, stderr=self.log)
        for _ in range(150):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the dev server did not start")

    def kill(self):
        with self.lock:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self):
        with self.lock:
            if self.process and self.process.poll() is None:
                self.process.terminate()
                self.process.wait()


class Soak:
    def __init__(self, args):
        self.args = args
        self.random = random.Random(args.seed)
        self.org = str(uuid.uuid4())
        self.phone_number_id = "9" + "".join(self.random.choice("0123456789") for _ in range(14))
        base = self.random.randrange(10_000_000, 90_000_000)
        # Every fourth contact has a WhatsApp username and withholds the number (a BSUID only).
        self.contacts = [f"US.1555{base + i:08d}" if i % 4 == 3 else f"1555{base + i:08d}"
                         for i in range(args.contacts)]
        # The drain's trickle goes to a contact of its own: a load contact's conversation may be
        # the one held by a send of unknown outcome, and its trickle would then never be answered.
        self.trickle = f"1555{base + args.contacts:08d}"
        port = int(os.environ.get("SOAK_PORT", "0")) or free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.graph = FakeGraph(self.url + "/api/webhook", self.phone_number_id)
        graph_port = self.graph.start()
        self.server = Server(port, graph_port, os.path.join(ROOT, "target", "soak-server.log"))
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=24)
        self.lock = threading.Lock()
        self.acked = set()        # wamids answered 200
        self.unacked = {}         # wamid -> body, still to deliver
        self.deliveries = Counter()
        self.faults = Counter()
        self.stop = threading.Event()

    # --- setup -------------------------------------------------------------------------------
    def create_org(self):
        """The soak's own org (an earlier run's, and all its rows, deleted first)."""
        psql(f"""
          delete from public.orgs where name = 'Soak';
          insert into public.orgs (id, name) values ('{self.org}', 'Soak');
          insert into public.whatsapp_numbers (org_id, phone_number_id, display_phone_number)
            values ('{self.org}', '{self.phone_number_id}', '+1 555 010 0099');
          insert into public.assistant_settings (org_id, rate_limit_per_minute, reply_template, template_language)
            values ('{self.org}', 1000, 'assistant_reply', 'en_US');""")

    # --- load --------------------------------------------------------------------------------
    def delivery(self, wa_id, text):
        wamid = "wamid.soakin." + uuid.uuid4().hex
        if wa_id.startswith("US."):  # a username-only person: no phone number anywhere
            contact = {"profile": {"name": "Soak", "username": "@soak"}, "user_id": wa_id}
            sender = {"from_user_id": wa_id}
        else:
            contact = {"profile": {"name": "Soak"}, "wa_id": wa_id}
            sender = {"from": wa_id}
        value = {"contacts": [contact],
                 "messages": [dict(sender, id=wamid, timestamp=str(int(time.time())),
                                   type="text", text={"body": text})]}
        return wamid, json.dumps(envelope(self.phone_number_id, value)).encode()

    def deliver(self, wamid, body):
        """One POST of a delivery; not answered 200, it stays queued for redelivery."""
        status = post(self.url + "/api/webhook", body,
                      {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)})
        with self.lock:
            self.deliveries[status] += 1
            if status == 200:
                self.acked.add(wamid)
                self.unacked.pop(wamid, None)
            elif wamid not in self.acked:
                self.unacked[wamid] = body
        return status

    def send_burst(self, wa_id):
        """One to three bubbles within about a second, each its own delivery, in order."""
        for _ in range(self.random.choice([1, 1, 2, 3])):
            wamid, body = self.delivery(wa_id, self.random.choice(TEXTS))
            with self.lock:
                self.unacked[wamid] = body
            self.deliver(wamid, body)
            time.sleep(self.random.uniform(0.05, 0.4))

    def redeliver_loop(self):
        while not self.stop.is_set() or self.pending_deliveries():
            with self.lock:
                waiting = list(self.unacked.items())[:50]
            for wamid, body in waiting:
                self.pool.submit(self.deliver, wamid, body)
            time.sleep(1.0)

    def pending_deliveries(self):
        with self.lock:
            return len(self.unacked)

    def load(self, seconds):
        end = time.time() + seconds
        busy = {}
        while time.time() < end:
            time.sleep(1.0 / self.args.rate)
            wa_id = self.random.choice(self.contacts)
            if busy.get(wa_id) and not busy[wa_id].done():
                continue  # a contact types one burst at a time
            busy[wa_id] = self.pool.submit(self.send_burst, wa_id)

    # --- faults and crons --------------------------------------------------------------------
    def cron(self, path):
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {CRON_SECRET}"})
        try:
            with urllib.request.urlopen(request, timeout=70) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except (urllib.error.URLError, OSError):
            return 0

    def crons(self):
        return [self.cron("/api/cron/retry-failed"), self.cron("/api/cron/check-reminders")]

    def cron_loop(self):
        while not self.stop.is_set():
            self.pool.submit(self.crons)
            time.sleep(4)

    def inject(self, kind):
        self.faults[kind] += 1
        log(f"fault: {kind}")
        if kind == "kill":
            self.server.kill()
            time.sleep(0.3)
            self.server.start()
        elif kind in ("postgres", "postgrest"):
            what = "db" if kind == "postgres" else "rest"
            subprocess.run([os.path.join(ROOT, "scripts/stack"), f"stop-{what}"], check=True,
                           capture_output=True)
            time.sleep(1.5)
            subprocess.run([os.path.join(ROOT, "scripts/stack"), f"start-{what}"], check=True,
                           capture_output=True)
        elif kind.startswith("graph_"):
            self.graph.set_mode(kind)
            time.sleep(self.random.uniform(2, 4))
            self.graph.set_mode(None)
        elif kind == "duplicates":
            with self.lock:
                recent = list(self.unacked.items())[-5:] or []
            wamid, body = self.delivery(self.random.choice(self.contacts), "duplicate me")
            for item in recent + [(wamid, body)] * 3:
                self.pool.submit(self.deliver, *item)
        elif kind == "overlapping_crons":
            for _ in range(3):
                self.pool.submit(self.crons)

    def fault_loop(self):
        kinds = []
        while not self.stop.wait(self.random.uniform(0.6, 1.4) * self.args.fault_every):
            if not kinds:
                kinds = FAULTS[:]
                self.random.shuffle(kinds)
            self.inject(kinds.pop())

    # --- drain -------------------------------------------------------------------------------
    def pending(self):
        counts = rows(f"""
          select
            (select count(*) from public.messages where org_id = '{self.org}' and direction = 'inbound'
               and status <> 'processed' and discarded_at is null) as inbound,
            (select count(*) from public.messages where org_id = '{self.org}' and direction = 'outbound'
               and status = 'sending') as sending,
            (select count(*) from public.reminders where org_id = '{self.org}'
               and status in ('pending', 'sending')) as reminders""")[0]
        counts["deliveries"] = self.pending_deliveries()
        counts["statuses"] = self.graph.pending_statuses()
        return counts

    def fast_forward(self):
        """Moves the clock of backoffs and reminders: what waits for a later time is due now."""
        psql(f"""
          update public.dead_letter_queue set next_attempt_at = now()
            where org_id = '{self.org}' and status = 'pending' and next_attempt_at > now();
          update public.reminders set due_at = least(due_at, now()), retry_at = null
            where org_id = '{self.org}' and status = 'pending';""")

    def drain(self, seconds):
        end = time.time() + seconds
        quiet = 0
        counts = {}
        while time.time() < end:
            if counts.get("sending"):
                # A trickle of traffic, as a live number has: its statuses show the outcome
                # resolver that Meta's status stream works.
                wamid, body = self.delivery(self.trickle, "still there?")
                with self.lock:
                    self.unacked[wamid] = body
                self.deliver(wamid, body)
            self.fast_forward()
            self.crons()
            counts = self.pending()
            quiet = quiet + 1 if not any(counts.values()) else 0
            if quiet >= 2:
                return True
            time.sleep(2)
        log("still pending after the drain:", counts)
        for row in rows(f"""
            select m.status, m.reply_to is not null as reply, m.reminder_id is not null as reminder,
                   round(extract(epoch from now() - m.sending_since)) as sending_for_s,
                   round(extract(epoch from now() - s.received_at)) as last_status_s_ago
            from public.messages m
            join public.conversations v on v.id = m.conversation_id
            left join private.whatsapp_status_stream s on s.whatsapp_number_id = v.whatsapp_number_id
            where m.org_id = '{self.org}' and m.direction = 'outbound' and m.status = 'sending'
            limit 5"""):
            log("sending:", row)
        return False

    # --- checks ------------------------------------------------------------------------------
    def check(self):
        org = self.org
        inbound = rows(f"""select m.id, m.conversation_id, m.wa_message_id as wamid, m.status,
                                  m.discarded_at is not null as discarded,
                                  extract(epoch from m.created_at) as at
                           from public.messages m where m.org_id = '{org}' and m.direction = 'inbound'
                           order by m.created_at, m.id""")
        outbound = rows(f"""select m.id, m.conversation_id, m.reply_to, m.reminder_id, m.status,
                                   m.wa_message_id as wamid, m.payload -> 'wamids' as wamids
                            from public.messages m where m.org_id = '{org}' and m.direction = 'outbound'""")
        reminders = rows(f"select id, status from public.reminders where org_id = '{org}'")
        dead = rows(f"""select ref, status, error from public.dead_letter_queue
                        where org_id = '{org}' and kind = 'inbound_message' and status = 'discarded'""")
        with self.graph.lock:
            # Only sends to the soak's contacts: on a shared stack the crons also send other
            # orgs' due work to this fake.
            mine = set(self.contacts) | {self.trickle}
            accepted = [a for a in self.graph.accepted if a["to"] in mine]

        by_id = {o["id"]: o for o in outbound}
        by_wamid = {}
        for o in outbound:
            for w in [o["wamid"]] + list(o["wamids"] or []):
                if w:
                    by_wamid[w] = o["id"]
        sends = defaultdict(list)   # outbound id -> accepted sends
        unrecorded = []
        for a in accepted:
            owner = a["callback"] if a["callback"] in by_id else by_wamid.get(a["wamid"])
            if owner is None:
                unrecorded.append(a)
            else:
                sends[owner].append(a)
        doubled = sum(n - 1 for o in sends.values() for n in Counter(a["text"] for a in o).values() if n > 1)

        stored = Counter(m["wamid"] for m in inbound)
        lost = sum(1 for w in self.acked if stored[w] == 0) + self.pending_deliveries()
        twice = sum(1 for n in stored.values() if n > 1)

        # A conversation's turns: the inbound messages up to and including the one a reply answers.
        position = {m["id"]: i for i, m in enumerate(inbound)}
        replies = defaultdict(list)
        for o in outbound:
            # A reply refused for certain (`failed`) is no answer: its turn's messages join the
            # conversation's next turn.
            if o["reply_to"] in position and o["status"] != "failed":
                replies[o["conversation_id"]].append(o)
        unanswered, answered_turns, out_of_order = 0, 0, 0
        conversations = defaultdict(list)
        for m in inbound:
            conversations[m["conversation_id"]].append(m)
        for conversation, messages in conversations.items():
            turns = sorted(replies[conversation], key=lambda o: position[o["reply_to"]])
            last = -1
            for reply in turns:
                members = [m for m in messages if last < position[m["id"]] <= position[reply["reply_to"]]]
                last = position[reply["reply_to"]]
                if sends.get(reply["id"]):
                    answered_turns += 1
                else:
                    unanswered += sum(1 for m in members if not m["discarded"])
            unanswered += sum(1 for m in messages if position[m["id"]] > last and not m["discarded"])
            order = [position[o["reply_to"]] for o in sorted(
                (o for o in turns if sends.get(o["id"])), key=lambda o: min(a["seq"] for a in sends[o["id"]]))]
            out_of_order += sum(1 for a, b in zip(order, order[1:]) if b < a)

        reminder_sends = Counter()
        for o in outbound:
            if o["reminder_id"]:
                reminder_sends[o["reminder_id"]] += len(sends.get(o["id"], []))
        due = [r for r in reminders if r["status"] != "cancelled"]
        reminders_sent = sum(1 for r in due if reminder_sends[r["id"]] >= 1)
        reminders_unsent = len(due) - reminders_sent
        reminders_doubled = sum(n - 1 for n in reminder_sends.values() if n > 1)

        figures = {
            "deliveries_acknowledged": len(self.acked), "posts": dict(self.deliveries),
            "inbound_stored": len(inbound), "turns_answered": answered_turns,
            "sends_accepted": len(accepted), "graph_faulted_calls": dict(self.graph.refused),
            "faults": dict(self.faults), "faults_total": sum(self.faults.values()),
            "dead_lettered": len(dead), "reminders": len(reminders), "reminders_sent": reminders_sent,
            "lost": lost, "stored_twice": twice, "doubled": doubled + reminders_doubled,
            "unrecorded_sends": len(unrecorded), "unanswered": unanswered,
            "out_of_order": out_of_order, "reminders_unsent": reminders_unsent,
        }
        with open(os.path.join(ROOT, "target", "soak-sends.json"), "w") as out:
            json.dump({"org": org, "unrecorded": unrecorded, "accepted": accepted}, out)
        for reason in Counter(d["error"] for d in dead).most_common(5):
            log("dead-lettered:", reason[1], "x", reason[0][:160])
        return figures

    def run(self):
        self.create_org()
        self.server.start()
        threads = [threading.Thread(target=f, daemon=True)
                   for f in (self.redeliver_loop, self.cron_loop, self.fault_loop)]
        for t in threads:
            t.start()
        log(f"load for {self.args.duration} s at about {self.args.rate} bursts/s from "
            f"{len(self.contacts)} contacts; a fault about every {self.args.fault_every} s")
        self.load(self.args.duration)
        self.stop.set()
        self.graph.set_mode(None)
        for t in threads[1:]:
            t.join()
        threads[0].join(timeout=120)
        log("load done; draining")
        drained = self.drain(self.args.drain)
        figures = self.check()
        self.server.stop()
        figures["drained"] = drained
        return figures


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


VIOLATIONS = ["lost", "stored_twice", "doubled", "unrecorded_sends", "unanswered", "out_of_order",
              "reminders_unsent"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=int(os.environ.get("SOAK_SECONDS", 75)))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", 4)))
    parser.add_argument("--contacts", type=int, default=int(os.environ.get("SOAK_CONTACTS", 60)))
    parser.add_argument("--fault-every", type=float, default=float(os.environ.get("SOAK_FAULT_EVERY", 5)))
    parser.add_argument("--drain", type=int, default=int(os.environ.get("SOAK_DRAIN_SECONDS", 150)))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", time.time())))
    args = parser.parse_args()
    log(f"seed {args.seed}")
    figures = Soak(args).run()
    for key, value in figures.items():
        log(f"{key:24} {value}")
    print("soak-figures: " + json.dumps(figures), flush=True)
    broken = [k for k in VIOLATIONS if figures[k]] + ([] if figures["drained"] else ["drained"])
    if broken:
        log("VIOLATED: " + ", ".join(broken))
        sys.exit(1)
    log("every invariant held")


if __name__ == "__main__":
    main()
