import pytest

from wevoip.interfaces import IDialplanPreset
from wevoip.plugins import PluginError, discover, require
from wevoip.routing.dialplan import Caller, DialplanError, Rule, denormalise, normalise


@pytest.fixture(scope="module")
def presets():
    return discover(IDialplanPreset)


def test_the_four_country_presets_are_plugins(presets):
    assert {"us", "br", "gb", "de"} <= set(presets)
    for preset in presets.values():
        for rule in preset.rules():
            assert rule.check() is rule


@pytest.mark.parametrize("preset, caller, dialled, expected", [
    ("us", Caller("1", "212"), "2125550100", "+12125550100"),
    ("us", Caller("1", "212"), "12125550100", "+12125550100"),
    ("us", Caller("1", "212"), "5550100", "+12125550100"),
    ("us", Caller("1", "212"), "011442071838750", "+442071838750"),
    ("us", Caller("1", "212"), "+4930123456", "+4930123456"),
    ("us", Caller("1", "212"), "911", None),
    ("br", Caller("55", "11"), "987654321", "+5511987654321"),
    ("br", Caller("55", "11"), "32345678", "+551132345678"),
    ("br", Caller("55", "11"), "02133334444", "+552133334444"),
    ("br", Caller("55", "11"), "02121987654321", "+5521987654321"),
    ("br", Caller("55", "11"), "0021442071838750", "+442071838750"),
    ("gb", Caller("44", "20"), "02071838750", "+442071838750"),
    ("gb", Caller("44", "20"), "71838750", "+442071838750"),
    ("gb", Caller("44", "20"), "0014155550100", "+14155550100"),
    ("de", Caller("49", "30"), "030123456", "+4930123456"),
    ("de", Caller("49", "30"), "123456", "+4930123456"),
    ("de", Caller("49", "30"), "00442071838750", "+442071838750"),
])
def test_presets_normalise_what_people_dial(presets, preset, caller, dialled, expected):
    assert normalise(dialled, presets[preset].rules(), caller) == expected


def test_caller_codes_next_to_group_references_stay_apart():
    rules = [Rule(r"\d{4}", r"^(\d{4})$", r"+\1_CC")]
    assert normalise("5550", rules, Caller("1", "")) == "+55501"


@pytest.mark.parametrize("rule, field", [
    (Rule("(\\d+)+", "(.*)", "\\1"), "match"),
    (Rule("\\d+", "((\\d*)*)", "\\1"), "subs"),
    (Rule("[", "(.*)", "\\1"), "match"),
    (Rule("\\d+", "(\\d+)", "+\\2"), "replacement"),
    (Rule("\\d" * 150, "(.*)", "\\1"), "match"),
    (Rule("\\d+", "(.*)", ""), "replacement"),
])
def test_dangerous_or_broken_rules_are_refused_naming_the_field(rule, field):
    with pytest.raises(DialplanError) as caught:
        rule.check()
    assert caught.value.field == field


def test_junk_dialled_strings_normalise_to_nothing(presets):
    for junk in ["", "abc", "1" * 40, "12 34", "+", "sip:1234"]:
        assert normalise(junk, presets["us"].rules(), Caller("1", "212")) is None


def test_gateways_strip_and_prefix():
    assert denormalise("+442071838750", 1, "00") == "00442071838750"
    assert denormalise("+12125550100", 2, "") == "2125550100"


def test_an_operator_drops_a_preset_into_a_configured_folder(tmp_path):
    (tmp_path / "my_country.py").write_text(
        "from twisted.plugin import IPlugin\n"
        "from zope.interface import implementer\n"
        "from wevoip.interfaces import IDialplanPreset\n"
        "from wevoip.routing.dialplan import Rule\n"
        "@implementer(IPlugin, IDialplanPreset)\n"
        "class Mine:\n"
        "    name, country, description = 'xx', 'XX', 'mine'\n"
        "    def rules(self):\n"
        "        return [Rule(r'7\\d{3}', r'^(\\d+)$', r'+99\\1')]\n"
        "mine = Mine()\n")
    found = discover(IDialplanPreset, [tmp_path])
    assert normalise("7123", found["xx"].rules(), Caller()) == "+997123"
    assert require(found, ["us", "xx"], "dialplan preset") == [found["us"], found["xx"]]


def test_an_enabled_plugin_that_is_missing_is_named(presets):
    with pytest.raises(PluginError, match="'zz' is enabled but was not found"):
        require(presets, ["us", "zz"], "dialplan preset")


def test_a_plugin_that_breaks_its_interface_is_named(tmp_path):
    (tmp_path / "broken_preset.py").write_text(
        "from twisted.plugin import IPlugin\n"
        "from zope.interface import implementer\n"
        "from wevoip.interfaces import IDialplanPreset\n"
        "@implementer(IPlugin, IDialplanPreset)\n"
        "class Broken:\n"
        "    name = 'broken'\n"
        "broken = Broken()\n")
    with pytest.raises(PluginError, match="'broken' does not provide IDialplanPreset"):
        discover(IDialplanPreset, [tmp_path])
    assert "broken" not in discover(IDialplanPreset), "a folder of an earlier discovery stays out of later ones"
