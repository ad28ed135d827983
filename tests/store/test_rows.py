from wsrec.store._rows import COLUMNS, ColumnBuffer


def test_take_gives_complete_rows_and_counts_their_bytes():
    rows = ColumnBuffer()
    puts = rows.appenders()
    assert len(puts) == len(COLUMNS)
    for i in range(3):
        for put, value in zip(puts, (i, 0, 0, 0, None, "in", "text", (), (), b"ab" * i)):
            put(value)
    puts[0](99)  # a row being appended: its payload is not there yet
    assert len(rows) == 3
    chunk = rows.take()
    assert chunk[0] == [0, 1, 2] and chunk[-1] == [b"", b"ab", b"abab"]
    assert len(rows) == 0 and rows.columns[0] == [99]  # the incomplete row stays
    rows.taken(chunk)
    assert rows.bytes_out == 6
