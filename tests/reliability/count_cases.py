"""Count the reliability cases for the README: faults injected, bad inputs tried, hostile paths
tried, from the ``rel`` markers of tests/reliability and the existing tests listed in
REFERENCED (one case per collected item). With ``--run`` it also runs them all and reports
what failed, i.e. what was lost or broken (must be nothing).

    python tests/reliability/count_cases.py [--run]
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Tests of other areas that already inject a fault, try a bad input or a hostile path.
REFERENCED: dict[str, list[str]] = {
    "fault": [
        "tests/engine/test_engine_store.py::test_sigkill_during_put_leaves_no_partial_commit",
        "tests/engine/test_engine_store.py::test_concurrent_writers_on_one_branch_both_land",
        "tests/engine/test_engine_store.py::test_reader_sees_whole_puts_only",
        "tests/engine/test_engine_store.py::test_disk_full_is_a_store_error_and_commits_nothing",
        "tests/engine/test_engine_store.py::test_read_only_filesystem_is_a_store_error",
        "tests/engine/test_engine_store.py::test_read_only_state_folder_gives_store_error",
        "tests/engine/test_engine_cli.py::test_sigkill_during_put_file_of_a_folder",
        "tests/engine/test_engine_recovery.py::test_sigkill_during_a_job_is_recovered",
        "tests/engine/test_engine_recovery.py::"
        "test_ctrl_c_during_a_job_stops_the_code_and_keeps_the_trigger",
        "tests/engine/test_engine_sigterm.py::test_sigterm_during_a_job_stops_the_transform",
        "tests/engine/test_engine_pipelines.py::"
        "test_failure_retries_publishes_nothing_and_fix_skips_done_datums",
        "tests/engine/test_engine_pipelines.py::test_datum_timeout_fails_the_datum",
        "tests/engine/test_engine_pipelines.py::test_downstream_does_not_run_after_a_failure",
        "tests/engine/test_engine_batching.py::"
        "test_code_that_dies_mid_datum_is_restarted_for_the_retry",
        "tests/engine/test_engine_batching.py::test_reported_error_is_retried_then_fails_the_job",
        "tests/data/test_data_generate.py::test_datum_batching_against_a_fake_worker",
        "tests/model/test_model_cli.py::test_sigterm_saves_and_rerun_resumes_at_that_step",
        "tests/model/test_model_trainer.py::test_half_written_checkpoint_is_never_picked",
    ],
    "bad_input": [
        "tests/data/test_data_images.py::test_bad_files_raise_data_error_naming_the_file",
        "tests/data/test_data_images.py::test_missing_file",
        "tests/data/test_data_images.py::test_decompression_bomb_is_an_error",
        "tests/data/test_data_images.py::test_grayscale_L_replicated",
        "tests/data/test_data_images.py::test_16bit_png_scaled_not_clipped",
        "tests/data/test_data_images.py::test_mode_I_32bit_treated_as_16bit",
        "tests/data/test_data_images.py::test_rgba_composited_on_white",
        "tests/data/test_data_images.py::test_la_composited_on_white",
        "tests/data/test_data_images.py::test_palette_with_and_without_transparency",
        "tests/data/test_data_images.py::test_cmyk",
        "tests/data/test_data_dataset.py::test_bad_files_skipped_with_a_warning_or_fail",
        "tests/data/test_data_dataset.py::test_odd_width_is_skipped_or_fails",
        "tests/data/test_data_dataset.py::test_folder_layout_with_no_match_is_an_error",
        "tests/data/test_data_dataset.py::test_missing_empty_and_not_a_folder",
        "tests/data/test_data_dataset.py::test_decompression_bomb_skipped_in_the_dataset",
        "tests/data/test_data_dataset.py::"
        "test_truncated_file_under_fail_is_a_data_error_before_training",
        "tests/data/test_data_process.py::test_bad_image_skipped_and_named",
        "tests/data/test_data_process.py::test_combine_size_mismatch_is_skipped_or_fails",
        "tests/data/test_data_generate.py::test_bad_images_skipped_or_fail",
        "tests/data/test_data_generate.py::test_cli_errors_are_one_line_and_an_exit_code",
        "tests/engine/test_engine_specs.py::test_unreadable_specs_name_the_file",
        "tests/engine/test_engine_specs.py::test_schema_errors_are_reported_with_field_paths",
        "tests/engine/test_engine_specs.py::test_semantic_errors",
        "tests/engine/test_engine_pipelines.py::test_spec_errors_name_file_pipeline_and_field",
        "tests/engine/test_engine_cli.py::test_exit_codes_and_messages",
        "tests/engine/test_engine_store.py::test_invalid_repo_names_are_refused",
        "tests/model/test_model_cli.py::"
        "test_model_option_contradicting_the_run_is_one_clear_error",
        "tests/model/test_model_cli.py::test_unusable_values_are_usage_errors",
        "tests/model/test_model_cli.py::test_missing_input_folder_and_checkpoint",
    ],
    "hostile": [
        "tests/engine/test_engine_store.py::test_unsafe_destination_paths_are_refused",
        "tests/engine/test_engine_cli.py::"
        "test_folder_without_r_and_unsafe_destinations_are_refused",
        "tests/engine/test_engine_cli.py::test_get_tree_refuses_to_write_outside_its_folder",
        "tests/engine/test_engine_props.py::test_dotdot_anywhere_is_refused",
        "tests/engine/test_engine_props.py::test_backslash_and_nul_are_refused",
        "tests/engine/test_engine_props.py::test_parser_never_crashes",
        "tests/engine/test_engine_pipelines.py::"
        "test_transform_writing_into_its_input_cannot_change_the_store",
        "tests/cluster/test_cluster_errors.py::test_get_refuses_paths_outside_the_folder",
    ],
}


class _Counter:
    """A pytest plugin that tallies rel markers (ours) and referenced items (others')."""

    def __init__(self) -> None:
        self.ours: Counter = Counter()
        self.theirs: Counter = Counter()
        self.nodes: dict[str, str] = {}  # node id -> kind
        self.failed: list[str] = []
        self.matched: set[str] = set()  # REFERENCED ids that named at least one collected item

    def pytest_collection_modifyitems(self, items) -> None:
        for item in items:
            mark = item.get_closest_marker("rel")
            if mark is not None:
                n = mark.args[1] if len(mark.args) > 1 else mark.kwargs.get("n", 1)
                self.ours[mark.args[0]] += n
                self.nodes[item.nodeid] = mark.args[0]
                continue
            for kind, ids in REFERENCED.items():
                hits = [i for i in ids if item.nodeid == i or item.nodeid.startswith(i + "[")]
                if hits:
                    self.theirs[kind] += 1
                    self.nodes[item.nodeid] = kind
                    self.matched.update(hits)

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed:
            self.failed.append(report.nodeid)


def main(argv: list[str]) -> int:
    run = "--run" in argv
    plugin = _Counter()
    nodes = [i for ids in REFERENCED.values() for i in ids]
    args = ["-q", "-p", "no:cacheprovider", "tests/reliability", *nodes]
    if not run:
        args.insert(0, "--collect-only")
    os.chdir(REPO)
    code = pytest.main(args, plugins=[plugin])
    print("\n| kind | tests/reliability | referenced | total |\n|---|---|---|---|")
    for kind in ("fault", "bad_input", "hostile"):
        ours, theirs = plugin.ours[kind], plugin.theirs[kind]
        print(f"| {kind} | {ours} | {theirs} | {ours + theirs} |")
    # (When a named test is gone pytest collects nothing and exits 4: said by pytest itself.)
    missing = [i for i in nodes if i not in plugin.matched] if code == 0 else []
    for i in missing:  # a renamed or deleted test would otherwise drop out of the count
        print(f"count_cases.py: REFERENCED names no collected test: {i}", file=sys.stderr)
    if run:
        print(f"\nfailed (lost or broken): {len(plugin.failed) or 'nothing'}")
        for n in plugin.failed:
            print("  " + n)
    if missing:
        return 4
    return int(code) if run else int(code != 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
