from cities.collation import heading, sort_key


def test_french_order_accents_ligatures_numbers() -> None:
    names = ["Rue de la Paix", "Zürich", "Église", "Eglise", "Œuvre", "Odile", "10 Mai", "2 Mai"]
    ordered = sorted(names, key=sort_key)
    assert ordered == [
        "2 Mai",
        "10 Mai",
        "Eglise",
        "Église",
        "Odile",
        "Œuvre",
        "Rue de la Paix",
        "Zürich",
    ]


def test_headings() -> None:
    assert heading("Rue de la Paix") == "R"
    assert heading("Église Saint-Étienne") == "E"
    assert heading("Œuvre") == "O"
    assert heading("8 Mai 1945") == "0-9"
