"""Reporting: the results model, the text/JSON/JUnit reports and the handout."""
