from taxi_bench.suite.report import RESULTS_END, RESULTS_START, Target, write_report


def test_the_results_section_is_replaced_and_the_analysis_kept(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(
        f"# Benchmarks\n\nWhy we chose uvicorn.\n\n{RESULTS_START}\nold\n{RESULTS_END}\n\nNotes.\n"
    )
    write_report(page, f"{RESULTS_START}\nnew\n{RESULTS_END}\n")
    text = page.read_text()
    assert "new" in text and "old" not in text
    assert text.startswith("# Benchmarks\n\nWhy we chose uvicorn.")
    assert text.rstrip().endswith("Notes.")


def test_a_new_page_gets_a_results_section(tmp_path):
    page = tmp_path / "benchmarks.md"
    write_report(page, f"{RESULTS_START}\nnew\n{RESULTS_END}\n")
    assert RESULTS_START in page.read_text()


def test_verdicts_say_how_far_off():
    assert Target("rate", 1000, 1200).verdict() == "met"
    assert Target("rate", 1000, 250).verdict() == "missed: 25% of the target"
    assert Target("sockets", 20_000, 19_954).verdict() == "missed: 99.8% of the target"
    assert Target("p99", 50, 150, higher_is_better=False).verdict() == "missed: 3.0x the limit"
    assert Target("lost", 0, 3, higher_is_better=False).verdict() == "missed"
    assert Target("p99", 50, None).verdict() == "not measured"


def test_commands_on_the_page_name_no_folder_of_the_machine():
    import sys

    from taxi_bench.suite.paths import REPOSITORY, RESULTS
    from taxi_bench.suite.report import shown

    command = [sys.executable, "-m", "taxi_bench", "rest", "--json", str(RESULTS / "rest.json")]

    text = shown(command)

    assert text == "python -m taxi_bench rest --json bench-results/rest.json"
    assert str(REPOSITORY) not in text


def test_the_server_cpu_column_shows_the_busiest_process_of_the_busiest_phase():
    from taxi_bench.suite.plan import Run
    from taxi_bench.suite.report import Result, results_table

    outcome = {
        "figures": {"throughput /s": 150.0},
        "latency": {"trip-list": [10.0, 20.0, 30.0]},
        "tally": {"lost": 0, "duplicates": 0},
        "server": {
            "cpu_percent": {"ready..measured": 97.0, "measured..done": 12.0},
            "busiest_process_cpu_percent": {"ready..measured": 95.0, "measured..done": 6.0},
            "peak_rss_bytes": 250 * 1024 * 1024,
        },
    }
    run = Run("REST trip list", "rest", ("--endpoint", "trip-list"))

    (row,) = results_table([Result(run, [], outcome=outcome)])[2:]

    assert "| 97 % (95 % one process) |" in row
