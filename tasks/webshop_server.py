"""The WebShop env's client back end: play a real WebShop server (github.com/princeton-nlp/WebShop)
through its web pages, shown as the same text pages as the local shop (webshop.py).

Start the server the way WebShop's README says (it listens on port 3000), then:
    python envs.py --env webshop --server http://127.0.0.1:3000 --stats --n_games 20
    python train_online.py --env webshop ...   with MINARCHER_WEBSHOP_SERVER=http://127.0.0.1:3000 (see README)

Goal i is the server's session "fixed_i" (the server shuffles its goals with a fixed seed; WebShop's
papers keep goals 0-499 for testing). The server computes the score; the client reads it off the page.
Standard library only: urllib and html.parser.
"""
import re
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

from tasks.webshop_pages import Pages

TIMEOUT = 60  # seconds: a search on the full 1.18M-product index can take a few


class _Text(HTMLParser):
    """The visible text of a page as (what, text) pairs; `what` says how the page shows it: a
    button, an option (a radio label), an asin (a product link), the title (h2) or plain text."""

    HIDDEN, VOID = {"script", "style", "head", "title"}, {"br", "input", "img", "link", "meta", "hr", "iframe"}

    def __init__(self, html):
        super().__init__()
        self.stack, self.items = [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append((tag, dict(attrs).get("class") or ""))

    def handle_endtag(self, tag):
        # close the innermost open tag of this name (the templates close some h4s with </h5>)
        for k in range(len(self.stack) - 1, -1, -1):
            if self.stack[k][0] == tag:
                del self.stack[k:]
                break

    def handle_data(self, data):
        text = " ".join(data.split())
        tags = {t for t, _ in self.stack}
        if not text or tags & self.HIDDEN:
            return
        what = ("button" if "button" in tags else "option" if "label" in tags else
                "asin" if any("product-link" in c for _, c in self.stack) else "title" if "h2" in tags else "text")
        self.items.append((what, text))


def check_server(server):
    """Raise ConnectionError, in one line, when nothing answers at `server`."""
    try:
        urllib.request.urlopen(server.rstrip("/") + "/", timeout=10).close()
    except urllib.error.HTTPError:
        pass  # the server is up; this page is simply not one it serves
    except (urllib.error.URLError, OSError) as e:
        raise ConnectionError(f"no WebShop server answers at {server} ({getattr(e, 'reason', e)}); start it "
                              "(WebShop's README: ./run_dev.sh) or leave out --server to use the local shop") from None


class ServerSession(Pages):
    """One shopper on the server: the same pages and buttons as the local shop, fetched."""

    def __init__(self, server, page_size=10):
        self.server, self.page_size = server.rstrip("/"), page_size  # the server shows 10 results a page

    def _get(self, *parts):
        # '/' would split a path segment even when quoted (WSGI servers unquote before routing)
        url = self.server + "/" + "/".join(urllib.parse.quote(str(p).replace("/", " "), safe="") for p in parts)
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
                return _Text(r.read().decode("utf-8", "replace")).items
        except (urllib.error.URLError, OSError) as e:
            raise ConnectionError(f"WebShop server at {self.server} failed on {url} ({getattr(e, 'reason', e)})") from None

    def reset(self, goal_index):
        self.session = f"fixed_{goal_index}"
        self.start()
        items = self._get(self.session)
        texts = [t for _, t in items]
        k = next(i for i, t in enumerate(texts) if t.startswith("Instruction:"))
        rest = texts[k][len("Instruction:"):].strip()
        return rest or texts[k + 1]  # the search page breaks the line after "Instruction:"

    def _load(self):
        if self.where == "results":
            items = self._get("search_results", self.session, self.query.lower(), self.page)
            total = next((re.search(r"of (\d+) total results", t) for _, t in items if "total results" in t), None)
            self.total, self.shown = int(total.group(1)) if total else 0, []
            for k, (what, text) in enumerate(items):
                if what == "asin":  # the product link, then its title, then its price
                    title, price = [t for _, t in items[k + 1:k + 3]] + [""] * (2 - len(items[k + 1:k + 3]))
                    self.shown.append({"asin": text, "title": title, "price_text": price})
        elif self.where == "item":
            items = self._get("item_page", self.session, self.asin, self.query.lower(), self.page, repr(self.chosen))
            options, heading = {}, None
            for k, (what, text) in enumerate(items):
                if what == "option":
                    heading = items[k - 1][1] if items[k - 1][0] != "option" else heading
                    options.setdefault(heading, []).append(text)
            title = next((t for w, t in items if w == "title"), "")
            price = next((t[len("Price:"):].strip() for _, t in items if t.startswith("Price:")), "")
            self.item = {"title": title, "price_text": price, "options": options}
        elif self.where in self.SUBPAGES:
            items = self._get("item_sub_page", self.session, self.asin, self.query.lower(), self.page, self.where,
                              repr(self.chosen))
            body = [t for w, t in items if w == "text" and not t.startswith(("Instruction:", "Current Query:"))]
            self.item = {**self.item, "text": "\n".join(body) or "(empty)"}

    def _buy(self):
        items = self._get("done", self.session, self.asin, repr(self.chosen))
        texts = [t for _, t in items]
        k = next((i for i, t in enumerate(texts) if t.startswith("Your score")), None)
        if k is None or k + 1 >= len(texts):
            raise ConnectionError(f"WebShop server at {self.server}: no score on the purchase page")
        return float(texts[k + 1])
