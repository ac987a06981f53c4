"""Real parts for every test: a Mongo-wire server, a loopback web server, a built store.

- MongoDB: nx-27017 on a free loopback port, or the server TEST_MONGODB_URI
  names (e.g. a real mongod); each test gets a database of its own.
- Web pages: a threaded HTTP server on loopback serving tests/pages/ and
  whatever a test registers.
- Store: the default Wikipedia sample, built once per session by the builder.
"""

import base64
import functools
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit, urlunsplit
from pathlib import Path

import pymongo
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = Path(__file__).resolve().parent / "pages"
sys.path.insert(0, str(ROOT))

from function.devserver import (free_port, function_command, start_embedded_mongo, stop,  # noqa: E402
                                stop_group, wait_for_port)
from website import Site  # noqa: E402

from function.sources import wiki_sample_path  # noqa: E402,F401  (the tests' import of it)


@functools.cache
def wiki_article(title):
    """The text of the Wikipedia sample's article ``title``: a real article, as a reader pastes it."""
    from function.records import Record
    from function.sources import open_source

    return next(record.text for record in open_source(wiki_sample_path())
                if isinstance(record, Record) and record.title == title)


# eight short news articles on eight subjects, for the tests of Chinese text end to end
CHINESE_ARTICLES = {
    "football": "昨晚的足球比赛中，主队球员在下半场连进两球，最终以二比一战胜客队。教练赛后表示球队的防守还需要加强。",
    "stocks": "今天股市大幅下跌，银行股和科技股领跌，投资者担心利率继续上升。分析师认为市场短期内仍将波动。",
    "cooking": "这道红烧肉的做法很简单，先把五花肉切块焯水，再加入酱油和冰糖慢慢炖煮一个小时。",
    "rocket": "运载火箭今天上午在发射场成功升空，把两颗卫星送入预定轨道。这是今年第十次航天发射任务。",
    "weather": "气象台预报，明天北方地区将迎来大范围降雪和寒潮，气温下降八到十度，请市民注意保暖。",
    "exam": "全国高考今天开始，一千多万名考生走进考场。教育部门提醒考生带好准考证，提前到达考点。",
    "railway": "新的高铁线路下个月通车，从省城到海边城市只需要一个半小时，每天开行四十对列车。",
    "hospital": "市人民医院新建的门诊大楼投入使用，医生和护士增加了一百多名，病人挂号排队的时间明显缩短。",
}

# eight short Thai news items; "white" is there for its word ขาว, which is "rice", ข้าว, without its tone mark
THAI_ARTICLES = {
    "football": "เมื่อคืนนี้ทีมฟุตบอลเจ้าบ้านยิงสองประตูในครึ่งหลังและชนะทีมเยือนสองต่อหนึ่ง "
                "โค้ชกล่าวหลังการแข่งขันว่าผู้เล่นต้องฝึกการป้องกันให้มากขึ้น",
    "rice": "ราคาข้าวในตลาดสูงขึ้นมากในปีนี้ ชาวนาดีใจที่ขายข้าวได้ราคาดี แต่ผู้ซื้อในเมืองบ่นว่าข้าวแพง",
    "weather": "กรมอุตุนิยมวิทยาพยากรณ์ว่าพรุ่งนี้จะมีฝนตกหนักทางภาคเหนือ อุณหภูมิจะลดลงห้าองศา "
               "ขอให้ประชาชนระวังน้ำท่วม",
    "rocket": "จรวดขนส่งถูกปล่อยขึ้นสู่อวกาศเมื่อเช้านี้ และนำดาวเทียมสองดวงเข้าสู่วงโคจรได้สำเร็จ",
    "hospital": "โรงพยาบาลประจำจังหวัดเปิดอาคารผู้ป่วยนอกหลังใหม่ มีแพทย์และพยาบาลเพิ่มขึ้นกว่าหนึ่งร้อยคน "
                "ผู้ป่วยรอคิวน้อยลง",
    "railway": "รถไฟความเร็วสูงสายใหม่จะเปิดให้บริการเดือนหน้า การเดินทางจากกรุงเทพไปเชียงใหม่จะใช้เวลาเพียงสามชั่วโมง",
    "exam": "นักเรียนกว่าหนึ่งแสนคนเข้าสอบเข้ามหาวิทยาลัยวันนี้ ครูเตือนให้นักเรียนนำบัตรประจำตัวมาด้วย",
    "white": "บ้านหลังนี้ทาสีขาวทั้งหลัง ผนังขาว ประตูขาว และหลังคาก็เป็นสีขาว",
}


# A reader's browser. Readers' clicks are sent with it: python-requests' own User-Agent is a
# crawler's to function.crawlers, and its clicks are left out of /stats.
BROWSER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
# What that browser sends with it when its reader clicks a link on a site's page to the function (an
# https or loopback address): its Fetch Metadata. A click with the User-Agent alone is a script's that
# says it is a browser, and /stats counts it apart (function/fetch_metadata.py).
READER = {"User-Agent": BROWSER_AGENT, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
          "Sec-Fetch-Dest": "document", "Sec-Fetch-User": "?1"}

# A site owner's STATS_TOKEN: /stats and /dashboard answer only to it when it is set (function/access.py)
STATS_TOKEN = "owner-" + secrets.token_hex(16)


def basic_auth(user, password):
    """The Authorization header of HTTP Basic, as a browser sends what its prompt was given."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# -- MongoDB -------------------------------------------------------------------
def with_database(uri, name):
    """``uri`` with its database path replaced by ``name`` (options kept)."""
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory):
    """URI of the Mongo-wire server the tests use: TEST_MONGODB_URI, else nx-27017."""
    external = os.environ.get("TEST_MONGODB_URI")
    if external:
        yield external
        return
    process, uri = start_embedded_mongo(tmp_path_factory.mktemp("mongo"))
    yield uri
    stop(process)


@pytest.fixture
def mongodb(mongo_server):
    """A MONGODB URI naming a database of this test's own."""
    name = "t" + uuid.uuid4().hex[:16]
    yield with_database(mongo_server, name)
    try:
        client = pymongo.MongoClient(mongo_server, serverSelectionTimeoutMS=2000)
        client.drop_database(name)
        client.close()
    except pymongo.errors.PyMongoError:
        pass


def wait_for_events(uri, collection, count, timeout=10.0):
    """The documents of ``collection`` once there are at least ``count`` (events are written async)."""
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=3000, tz_aware=True)
    db = client.get_default_database()
    deadline = time.monotonic() + timeout
    while True:
        docs = list(db[collection].find())
        if len(docs) >= count or time.monotonic() > deadline:
            client.close()
            return docs
        time.sleep(0.05)


# -- web pages -------------------------------------------------------------------
@pytest.fixture(scope="session")
def pages():
    """A loopback site serving tests/pages/*.html; tests add pages with ``pages.add``."""
    server = Site()
    for page in PAGES.glob("*.html"):
        server.add(f"/{page.name}", page.read_bytes())
    yield server
    server.close()


# -- the store -------------------------------------------------------------------
@pytest.fixture(scope="session")
def model_store(tmp_path_factory):
    """MODEL_STORE holding the default corpus 'wiki', built by the real builder."""
    from function.build import BuildOptions, build
    from function.sources import open_source

    root = tmp_path_factory.mktemp("model_store")
    build([open_source(wiki_sample_path())], root / "wiki", BuildOptions(name="wiki"), progress=False)
    return root


# -- the function -------------------------------------------------------------------
@pytest.fixture
def function_env(model_store, mongodb):
    return {
        "MODEL_STORE": str(model_store),
        "DEFAULT_CORPUS": "wiki",
        "MONGODB": mongodb,
        "CLICK_SECRET": "test-" + secrets.token_hex(16),
        "FETCH_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
    }


def make_client(env):
    """functions-framework's own test client around function/main.py, started under ``env``
    (set for the start only: the function reads its environment once, when it starts)."""
    import functions_framework

    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        app = functions_framework.create_app(target="handle", source=str(ROOT / "function" / "main.py"))
    return app.test_client()


@pytest.fixture
def client(function_env):
    return make_client(function_env)


class FunctionProcess:
    """`functions-framework` serving function/main.py in a process of its own."""

    def __init__(self, env, port=None):
        self.port = port or free_port()
        self.env = {**os.environ, **env, "PORT": str(self.port)}
        self.process = subprocess.Popen(
            function_command(), env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout=120):  # as long as devserver gives gunicorn: CI machines are shared
        try:
            wait_for_port("127.0.0.1", self.port, timeout, self.process)
        except RuntimeError:
            self.stop()
            raise RuntimeError("function did not start:\n" + self.output()) from None
        return self

    def stop(self, sig=signal.SIGTERM, timeout=30):
        return stop_group(self.process, sig, timeout)

    def output(self):
        if self.process.poll() is None:
            self.stop()
        return self.process.stdout.read()


@pytest.fixture
def function_process(function_env):
    started = []

    def start(**overrides):
        port = int(overrides.pop("PORT")) if "PORT" in overrides else None
        proc = FunctionProcess({**function_env, **overrides}, port=port)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop(signal.SIGKILL)
