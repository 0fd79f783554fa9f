"""A synthetic but realistic evaluation corpus for retrieval, generated from a seed.

Four families of fictional documents, chosen so that each retriever has blind spots:

- ``headphones``: 12 product sheets for headphones of one product line, alike in every
  respect but codename, part number and figures. Questions name the model ("battery
  life of the Aurelo KX-41"): keyword search finds the codename, while to the embedding
  model all twelve sheets mean the same thing.
- ``hr``: 12 HR policies written formally; questions are colloquial paraphrases sharing
  almost no words with the policy ("my dad died, how much time off do I get"): the
  embedding model bridges them, keyword search mostly cannot.
- ``runbooks``: 4 internal systems × 3 procedures; questions name the system and
  paraphrase the procedure ("renew the TLS certs on Marlin" for "rotate the X.509
  certificates of Marlin"): each retriever gets half of the answer.
- ``gadgets``: 8 FAQs about different consumer devices with plainly worded questions,
  where both retrievers should do well.

Nothing here is tuned to the search code; the templates were written before measuring.
"""

from __future__ import annotations

import random
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class Document:
    file_id: str
    family: str
    text: str


@dataclass(frozen=True)
class Question:
    text: str
    answer: str  # file_id
    family: str


_CODENAMES = [
    "Aurelo KX-41", "Brisa T9", "Calyx 220", "Dovra Q5", "Embra M3", "Fenwick S12",
    "Galen V7", "Hollis R2", "Isola P8", "Jarvo Z4", "Kestin L6", "Lumo N10",
]  # fmt: skip
_COLOURS = ["graphite", "sand", "midnight blue", "sage", "coral", "pearl white", "slate"]


def _headphones(rng: random.Random) -> tuple[list[Document], list[Question]]:
    docs, questions = [], []
    openings = [
        "The {name} is a pair of over-ear wireless headphones with active noise cancelling.",
        "Meet the {name}: wireless over-ear headphones with adaptive noise cancelling.",
        "{name} wireless headphones combine over-ear comfort with active noise cancelling.",
    ]
    for i, name in enumerate(_CODENAMES):
        battery = rng.choice([18, 22, 26, 30, 34, 38, 42, 45, 50, 55, 60, 70])
        returns = rng.choice([14, 21, 30, 45, 60])
        warranty = rng.choice([12, 18, 24, 36])
        part = f"HP-{rng.randint(1000, 9999)}"
        colour = rng.choice(_COLOURS)
        weight = rng.randint(210, 320)
        text = (
            rng.choice(openings).format(name=name)
            + f" It weighs {weight} grams and comes in {colour}. Part number {part}.\n\n"
            f"Battery: up to {battery} hours of playback on a full charge; a ten-minute charge "
            f"gives about {battery // 6} hours. Charging uses the USB-C port on the left cup.\n\n"
            f"Returns: unused {name} units may be returned within {returns} days of delivery "
            f"with the original packaging.\n\nWarranty: {warranty} months against manufacturing "
            "defects, excluding ear cushions and accidental damage.\n\nPairing: hold the power "
            "button for five seconds until the light flashes blue."
        )
        fid = f"file-hp-{i:02d}"
        docs.append(Document(fid, "headphones", text))
        short = name.split()[0]
        questions += [
            Question(f"What is the battery life of the {name}?", fid, "headphones"),
            Question(f"Which headphones have part number {part}?", fid, "headphones"),
            Question(f"How many days do I have to return the {short}?", fid, "headphones"),
        ]
    return docs, questions


_HR = [
    ("parental-leave", "Parental leave",
     "Employees who become parents through birth, adoption or surrogacy are entitled to "
     "sixteen weeks of fully remunerated leave, to be taken within the first year. Notice "
     "must be given to People Operations eight weeks before the expected start date.",
     ["We're having a baby in spring, how long can I stay home with pay?",
      "Do adoptive mums and dads also get time off when the kid arrives?"]),
    ("bereavement", "Bereavement leave",
     "In the event of the death of an immediate family member, staff are granted five "
     "working days of compassionate absence, extendable by agreement with their manager. "
     "Attendance at a funeral abroad qualifies for two additional days.",
     ["My dad passed away last night, how much time off do I get?",
      "Can I take days off to go to my grandmother's burial overseas?"]),
    ("remote-work", "Remote work",
     "Team members may perform their duties from home up to three days per week, subject "
     "to a suitable workstation and a stable internet connection. Working from another "
     "country requires prior approval from Legal because of tax exposure.",
     ["Am I allowed to do my job from my apartment some days?",
      "Can I spend a month working from my parents' place in Spain?"]),
    ("expenses", "Expense reimbursement",
     "Business expenditures are refunded when submitted with itemised receipts within "
     "sixty days. Alcohol, fines and first-class upgrades are never reimbursable. Claims "
     "above 500 euros need second-level sign-off.",
     ["I paid for a client dinner with my own card, how do I get the money back?",
      "Will the company cover a parking ticket I got while visiting a customer?"]),
    ("travel", "Business travel booking",
     "All trips must be arranged through the corporate agency portal at least fourteen "
     "days ahead. Economy class applies to flights under six hours; premium economy is "
     "permitted beyond that. Hotel nightly rates are capped by city tier.",
     ["Where do I book plane tickets for a work trip?",
      "Can I fly business class to Singapore for a conference?"]),
    ("equipment", "Equipment loans",
     "Laptops, monitors and headsets are issued on loan and remain company property. Lost "
     "or stolen devices must be reported to the service desk within 24 hours so that "
     "remote wipe can be triggered.",
     ["Someone nicked my work computer on the train, what should I do?",
      "Do I get to keep the screen they gave me when I quit?"]),
    ("training", "Learning budget",
     "Each employee has an annual allowance of 1,500 euros for courses, certifications and "
     "conferences relevant to their role. Unused allowance does not roll over into the "
     "following calendar year.",
     ["Is there money for me to take an online course?",
      "If I don't spend my course money this year, can I use it next year?"]),
    ("sabbatical", "Sabbatical",
     "After five years of continuous service, staff may request an unpaid sabbatical of "
     "between one and six months. Their position is guaranteed upon return and benefits "
     "continue during the break.",
     ["I've been here six years, can I take a long break to travel the world?",
      "Will I still have a job if I step away for a few months unpaid?"]),
    ("overtime", "Overtime compensation",
     "Hours worked beyond the contractual forty per week are compensated at 150 percent, or "
     "as time in lieu at the employee's choice, provided the extra hours were approved in "
     "advance by a line manager.",
     ["I stayed late every night this week, do I get paid extra?",
      "Can I get days off instead of cash for the weekends I worked?"]),
    ("whistleblowing", "Whistleblowing",
     "Concerns about fraud, bribery or safety violations can be raised anonymously through "
     "the independent ethics hotline. Retaliation against a reporter is a dismissible "
     "offence.",
     ["I think my boss is cooking the books, how can I tell someone without giving my name?",
      "Will I get fired for reporting a colleague taking kickbacks?"]),
    ("relocation", "Relocation assistance",
     "Employees transferring to another office receive a lump sum covering removals, "
     "temporary accommodation for up to sixty days and one house-hunting visit for two "
     "people.",
     ["The company is moving me to Berlin, will they pay for the movers?",
      "How long can I stay in a furnished flat after I move cities for the job?"]),
    ("harassment", "Dignity at work",
     "Bullying, intimidation and unwanted conduct of a sexual nature are prohibited. "
     "Complaints are investigated confidentially by a trained panel within ten working "
     "days of receipt.",
     ["A coworker keeps making creepy comments to me, who do I talk to?",
      "How quickly will HR look into my complaint about being picked on?"]),
]  # fmt: skip


def _hr() -> tuple[list[Document], list[Question]]:
    docs, questions = [], []
    for slug, title, body, asks in _HR:
        fid = f"file-hr-{slug}"
        text = (
            f"{title}\n\nPolicy owner: People Operations. Applies to all permanent staff.\n\n{body}"
        )
        docs.append(Document(fid, "hr", text))
        questions += [Question(q, fid, "hr") for q in asks]
    return docs, questions


_SYSTEMS = ["Kestrel", "Marlin", "Quokka", "Tamarin"]
_PROCEDURES = [
    ("certs", "Rotating X.509 certificates",
     "Certificates for {s} expire every 90 days. Generate a new key pair on the bastion, "
     "submit the signing request to the internal authority, then reload the ingress pods "
     "one at a time so that {s} keeps serving.",
     ["How do I renew the TLS certs on {s}?", "{s} HTTPS cert about to lapse, what's the fix?"]),
    ("failover", "Promoting the standby database",
     "If the primary database of {s} becomes unreachable, confirm replication lag is under "
     "five seconds, promote the standby with the cluster tool, and repoint the {s} "
     "connection string in the secrets vault.",
     ["{s} primary DB is down, how do we switch to the replica?",
      "What is the maximum replica delay allowed before promoting on {s}?"]),
    ("restore", "Recovering from backup",
     "Nightly snapshots of {s} are kept for 35 days in cold storage. To recover, pick the "
     "snapshot, restore into a scratch environment, verify row counts, then swap the "
     "volumes during a maintenance window.",
     ["How can I get yesterday's data back for {s}?", "How long are {s} snapshots retained?"]),
]  # fmt: skip


def _runbooks() -> tuple[list[Document], list[Question]]:
    docs, questions = [], []
    for system in _SYSTEMS:
        for slug, title, body, asks in _PROCEDURES:
            fid = f"file-rb-{system.lower()}-{slug}"
            text = f"Runbook: {title} ({system})\n\nOwner: platform team.\n\n" + body.format(
                s=system
            )
            docs.append(Document(fid, "runbooks", text))
            questions += [Question(q.format(s=system), fid, "runbooks") for q in asks]
    return docs, questions


_GADGETS = [
    ("vacuum", "Robot vacuum FAQ",
     "The robot vacuum maps each room with lidar and returns to its dock when the battery "
     "falls below fifteen percent. Empty the dust bin after every third run and replace "
     "the side brush every six months.",
     ["How often should I empty the robot vacuum's dust bin?"]),
    ("thermostat", "Smart thermostat FAQ",
     "The thermostat learns your schedule over the first week and lowers the heating when "
     "everyone leaves home. It works with gas boilers and heat pumps but not with electric "
     "baseboard heaters.",
     ["Is the smart thermostat compatible with a heat pump?"]),
    ("ebike", "E-bike FAQ",
     "The e-bike's motor assists up to 25 km/h. The removable battery charges fully in "
     "four and a half hours and lasts roughly 900 charge cycles before capacity drops.",
     ["How long does the e-bike battery take to charge?"]),
    ("espresso", "Espresso machine FAQ",
     "Descale the espresso machine every two months with citric acid. The steam wand must "
     "be purged after each use to stop milk from drying inside the nozzle.",
     ["How often do I need to descale the espresso machine?"]),
    ("drone", "Camera drone FAQ",
     "The drone flies for 31 minutes per battery and must stay below 120 metres. Firmware "
     "updates are installed from the controller app before the first flight.",
     ["What is the maximum flight time of the camera drone?"]),
    ("watch", "Fitness watch FAQ",
     "The watch is water resistant to 50 metres and tracks swimming laps in pools. Heart "
     "rate readings may be inaccurate during cold-water swims.",
     ["Can I wear the fitness watch while swimming?"]),
    ("printer", "3D printer FAQ",
     "The printer accepts PLA and PETG filament of 1.75 mm. Level the bed with the "
     "automatic probe whenever the nozzle is replaced.",
     ["Which filament types does the 3D printer support?"]),
    ("projector", "Home projector FAQ",
     "The projector's laser light source is rated for 20,000 hours. Keep a distance of "
     "2.5 metres for a 100-inch picture.",
     ["How far from the wall should the projector be for a 100 inch screen?"]),
]  # fmt: skip


def _gadgets() -> tuple[list[Document], list[Question]]:
    docs, questions = [], []
    for slug, title, body, asks in _GADGETS:
        fid = f"file-gadget-{slug}"
        docs.append(Document(fid, "gadgets", f"{title}\n\n{body}"))
        questions += [Question(q, fid, "gadgets") for q in asks]
    return docs, questions


def build_corpus(seed: int = 7) -> tuple[list[Document], list[Question]]:
    """All documents and questions; the same seed gives the same corpus."""
    rng = random.Random(seed)
    docs: list[Document] = []
    questions: list[Question] = []
    for part in (_headphones(rng), _hr(), _runbooks(), _gadgets()):
        docs += part[0]
        questions += part[1]
    return docs, questions


@asynccontextmanager
async def scratch_engine(postgres_url: str | None) -> AsyncIterator[AsyncEngine]:
    """An engine on a throwaway database: a temp SQLite file, or a fresh schema of the
    given PostgreSQL database (dropped afterwards), with the retrieval tables created."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from assistantd.retrieval.tables import metadata

    if postgres_url is None:
        with tempfile.TemporaryDirectory() as tmp:
            engine = create_async_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
            try:
                yield engine
            finally:
                await engine.dispose()
        return
    schema = f"retrieval_bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(postgres_url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_async_engine(
        postgres_url, connect_args={"server_settings": {"search_path": schema}}
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        yield engine
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
