"""The benchmark's data: deterministic spreadsheet rows of parties, as an import file has them.

Names are made of pseudo-words built from syllables (so a search term matches as many rows as it
would in a real customer base: common syllables match many, a full word few), every party has an
email and a phone, most an address, every second one a contact with an email; tags, a sales rep,
a prospect status and two custom values are spread with a skew (some tags are common, most rare).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

SYLLABLES = ("ka", "ro", "mi", "ten", "vo", "li", "san", "der", "bel", "mar", "to", "ni", "gra", "fen", "os",
             "ley", "wik", "dan", "por", "el", "ju", "stra", "ve", "hol", "min", "ber", "ca", "tis", "lun", "zo")
TLDS = ("com", "be", "nl", "de", "fr", "co.uk", "eu", "net")
SUFFIXES = ("", "", "", " Ltd", " GmbH", " BV", " NV", " SARL", " Inc", " & Sons", " Group", " Farms")
TAGS = ("vip", "dealer", "newsletter", "fleet", "trade-in", "service", "rental", "export", "parts", "finance",
        *(f"region-{n:02d}" for n in range(20)))
SEGMENTS = ("smb", "mid", "ent")


def words(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < count:
        out.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))))
    return sorted(out)


class Dataset:
    """``rows(n)`` yields the same ``n`` rows on every call (for the import and every re-run)."""

    def __init__(self, rep_emails: list[str], statuses: list[str], seed: int = 7) -> None:
        self.rep_emails = rep_emails
        self.statuses = statuses
        self.seed = seed
        self.company_words = words(1500, seed)
        self.first_names = [w.capitalize() for w in words(400, seed + 1)]
        self.last_names = [w.capitalize() for w in words(1200, seed + 2)]
        self.domains = [f"{w}.{TLDS[i % len(TLDS)]}" for i, w in enumerate(words(5000, seed + 3))]
        self.streets = [w.capitalize() for w in words(300, seed + 4)]
        self.cities = [w.capitalize() for w in words(200, seed + 5)]

    def rows(self, n: int, start: int = 0) -> Iterator[dict[str, str]]:
        rng = random.Random(self.seed * 1_000_003 + start)
        cw, fn, ln = self.company_words, self.first_names, self.last_names
        for i in range(start, start + n):
            person = i % 3 == 2
            first, last = rng.choice(fn), rng.choice(ln)
            domain = rng.choice(self.domains)
            row = {"kind": "person" if person else "organisation"}
            if person:
                row["first_name"], row["last_name"] = first, last
                row["email"] = f"{first.lower()}.{last.lower()}{i}@{domain}"
            else:
                row["name"] = f"{rng.choice(cw).capitalize()} {rng.choice(cw).capitalize()}{rng.choice(SUFFIXES)}"
                row["email"] = f"info{i}@{domain}"
            row["phone"] = f"+32 4{70 + i % 30} {i // 10_000 % 100:02d} {i // 100 % 100:02d} {i % 100:02d}"
            if i % 10 != 9:
                row.update(address_line1=f"{1 + i % 250} {rng.choice(self.streets)}straat",
                           postal_code=f"{1000 + i % 9000}", city=rng.choice(self.cities), country="BE")
            # skewed: the first tags are common, the regional ones rare
            row["tags"] = ";".join(sorted({TAGS[min(int(rng.expovariate(0.35)), len(TAGS) - 1)]
                                           for _ in range(1 + i % 2)}))
            row["sales_reps"] = self.rep_emails[i % len(self.rep_emails)]
            if not person and i % 4 != 3:
                row["prospect_status"] = self.statuses[i % len(self.statuses)]
            elif not person:
                row["is_customer"] = "yes"
            row["custom.segment"] = SEGMENTS[(i * 7) % 3]
            row["custom.employees"] = str(1 + (i * 37) % 500)
            if i % 2 == 0:
                cf, cl = rng.choice(fn), rng.choice(ln)
                row.update(contact_first_name=cf, contact_last_name=cl, contact_job_title="Buyer",
                           contact_email=f"{cf.lower()}.{cl.lower()}.{i}@{domain}")
            yield row
