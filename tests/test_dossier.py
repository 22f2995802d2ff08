import pytest

from shared.flows.dossier import DossierError, resolve_dossier, siren_from_name

MAPPING = {"542107651": "CEGID001"}


def resolve(name, metadata=None):
    return resolve_dossier(name, metadata or {}, MAPPING.get)


def test_metadata_wins_over_folder_and_siren():
    dossier = resolve("DEMO002/542107651FEC20210502.txt", {"CodeIbs": "DEMO001"})
    assert (dossier.code_ibs, dossier.source) == ("DEMO001", "metadata")


def test_first_folder_then_siren_mapping():
    assert resolve("DEMO002/sub/file.txt").code_ibs == "DEMO002"
    assert resolve("542107651FEC20210502.txt") .code_ibs == "CEGID001"
    assert resolve("542107651fec20210502.TXT").source == "siren"


@pytest.mark.parametrize(
    ("name", "metadata", "fragment"),
    [
        ("file.txt", {}, "no dossier"),
        ("999999999FEC20210502.txt", {}, "SIREN 999999999 is not in the dossier table"),
        ("x.txt", {"codeibs": ""}, "not a plausible dossier code"),
        ("x.txt", {"codeibs": "A" * 33}, "not a plausible dossier code"),
        ("x.txt", {"codeibs": "DEMO/001"}, "not a plausible dossier code"),
        ("x.txt", {"codeibs": "DEMO\x07"}, "not a plausible dossier code"),
        ("bad code/x.txt", {}, "folder 'bad code'"),
    ],
)
def test_unresolvable_dossiers_say_why(name, metadata, fragment):
    with pytest.raises(DossierError, match=fragment.replace("(", r"\(")):
        resolve(name, metadata)


def test_siren_from_name_needs_nine_digits():
    assert siren_from_name("dir/123456789FEC20231231.txt") == "123456789"
    assert siren_from_name("0000000001FEC20220831.txt") is None
