"""WebShop's site as text pages: what each page shows and where its buttons lead. Both back ends of
the WebShop env build on it: the local generated shop (webshop.py) and the client of a real WebShop
server (webshop_server.py), so an agent sees the same pages from either."""


class Pages:
    """The pages of WebShop's site as text and how its buttons move between them. A back end fills
    in, in `_load`, what the current page shows: `shown` (this page of results), `total`, `item`
    (title, price_text, options, and `text` on the Description / Features / Reviews pages); and it
    scores a purchase in `_buy`."""

    SUBPAGES = ("Description", "Features", "Reviews")

    def start(self):
        self.where, self.query, self.page, self.total, self.shown = "search", "", 1, 0, []
        self.asin, self.item, self.chosen = None, None, {}

    def buttons(self):
        if self.where == "results":
            return ["Back to Search"] + ["< Prev"] * (self.page > 1) + \
                ["Next >"] * (self.page * self.page_size < self.total) + [r["asin"] for r in self.shown]
        if self.where == "item":
            return ["Back to Search", "< Prev", *sum(self.item["options"].values(), []), *self.SUBPAGES, "Buy Now"]
        return ["Back to Search", "< Prev"] if self.where in self.SUBPAGES else []

    def render(self):
        if self.where == "search":
            return "[Search]"
        if self.where == "results":
            nav = " ".join(f"[{b}]" for b in self.buttons()[: len(self.buttons()) - len(self.shown)])
            return "\n".join([nav, f"Page {self.page} (Total results: {self.total})"] +
                             [f"[{r['asin']}] {r['title']} | {r['price_text']}" for r in self.shown])
        lines = ["[Back to Search] [< Prev]"]
        if self.where == "item":
            lines += [f"{o}: " + " ".join(f"[[{v}]]" if self.chosen.get(o) == v else f"[{v}]" for v in vs)
                      for o, vs in self.item["options"].items()]
            lines += [self.item["title"], f"Price: {self.item['price_text']}", "Rating: N.A.",
                      "[Description] [Features] [Reviews] [Buy Now]"]
        else:
            lines.append(self.item["text"])
        return "\n".join(lines)

    def search(self, query):
        self.where, self.query, self.page = "results", query, 1
        self._load()

    def click(self, button):
        """Follow a button of the current page; returns the score when it was Buy Now, else None."""
        if button == "Buy Now":
            return self._buy()
        if button == "Back to Search":
            self.where = "search"
        elif button == "Next >" or (button == "< Prev" and self.where == "results"):
            self.page += 1 if button == "Next >" else -1
        elif button == "< Prev":
            self.where = "results" if self.where == "item" else "item"
        elif self.where == "results":
            self.asin, self.chosen, self.where = button, {}, "item"
        elif button in self.SUBPAGES:
            self.where = button
        else:  # an option value: choose it in the option it belongs to
            self.chosen[next(o for o, vs in self.item["options"].items() if button in vs)] = button
            return None
        self._load()
        return None
