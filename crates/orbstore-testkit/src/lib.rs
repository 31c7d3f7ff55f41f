#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod crash;
pub mod strategies;
pub mod suite;
mod support;

pub mod bench;
pub mod cleanup;
#[cfg(feature = "containers")]
pub mod containers;

pub use support::{
    assert_kind, check_filters, d, docs, expect_filters, expect_query, ids, mixed_archived_events, open,
    seeded, servers_required, BackendFactory, Fixture, FnFactory, Skip,
};

/// Instantiates every conformance test as a `#[tokio::test]` in the calling module.
///
/// `$factory` is an expression giving a [`BackendFactory`]; it is evaluated once per test.
/// Attributes written after it go on every generated test: a server backend uses this to have
/// its tests ignored, with the reason, when no server was configured at build time (a `cfg` its
/// build script sets; see the crate's README). The calling crate needs `tokio` (with `macros` and
/// `rt-multi-thread`) as a dev-dependency.
///
/// ```text
/// orbstore_testkit::conformance_suite!(my_factory());
///
/// orbstore_testkit::conformance_suite!(
///     orbstore_testkit::FnFactory(common::fixture),
///     #[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
/// );
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::__for_each_case!([$crate::__conformance_test] $factory, [$(#[$attr])*]);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ($factory:expr, $attrs:tt; $($name:ident)*) => {
        $($crate::__conformance_one!($factory, $attrs, $name);)*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_one {
    ($factory:expr, [$(#[$attr:meta])*], $name:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $name() {
            let factory = $factory;
            $crate::suite::$name(&factory).await;
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __case_names {
    ($unused:expr; $($name:ident)*) => {
        &[$(stringify!($name)),*]
    };
}

/// The names of every case in the suite, in the order the macro instantiates them.
pub const CASES: &[&str] = __for_each_case!([__case_names]());

/// Calls `$m!($args; case1 case2 ...)` with every case of the suite. The one list of cases;
/// a test checks it against the functions in `src/suite`.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_case {
    ([$($m:tt)*] $($arg:tt)*) => {
        $($m)*!{$($arg)*;
            collection_is_listed_after_open_sorted
            invalid_collection_names_are_refused
            longest_collection_name_works
            drop_collection_returns_true_and_removes_documents
            drop_missing_collection_returns_false
            handle_after_drop_reads_empty_and_write_recreates
            collections_are_independent
            health_is_healthy_with_message
            stats_count_documents_per_collection
            flush_keeps_data_readable
            compact_keeps_every_document_and_index
            operations_after_close_fail_and_close_twice_is_fine
            capabilities_are_consistent
            insert_one_keeps_given_id
            insert_one_generates_time_ordered_ids
            insert_one_duplicate_id_is_conflict_and_keeps_original
            insert_refuses_bad_ids
            insert_refuses_dotted_dollar_and_empty_keys
            insert_refuses_integers_beyond_i64
            insert_many_returns_ids_in_input_order
            insert_many_empty_batch_returns_empty
            insert_many_existing_duplicate_in_middle_stores_nothing
            insert_many_repeated_id_within_batch_stores_nothing
            insert_many_invalid_document_stores_nothing
            insert_many_large_batch
            upsert_many_inserts_and_replaces_in_order
            upsert_many_invalid_document_stores_nothing
            upsert_many_large_batch
            upsert_inserts_when_missing
            upsert_replaces_whole_document
            upsert_without_id_generates_one
            find_by_id_missing_returns_none
            find_by_id_impossible_id_is_invalid
            values_round_trip_exactly
            update_one_sets_and_returns_one
            update_one_no_match_returns_zero
            update_one_takes_first_in_id_order
            update_many_updates_all_matching
            update_unset_removes_field
            update_inc_adds_creates_and_keeps_types
            update_inc_on_string_is_invalid_and_changes_nothing
            update_many_failure_changes_no_document
            invalid_updates_are_refused
            update_set_dotted_path_creates_objects
            delete_missing_id_returns_zero
            delete_one_takes_first_in_id_order
            delete_many_returns_count
            count_matches_filter_and_empty_is_zero
            reads_on_empty_collection_return_nothing
            find_stream_matches_find
            find_stream_matches_find_across_pages
            snapshot_reads_collections_indexes_and_documents
            snapshot_point_in_time_ignores_later_writes
            create_index_is_idempotent_and_listed
            index_name_reuse_with_other_spec_is_conflict
            invalid_index_specs_are_refused
            unique_index_refuses_duplicate_insert
            unique_index_refuses_duplicate_update_and_upsert
            unique_index_over_existing_duplicates_is_refused
            unique_index_ignores_missing_and_null
            unique_index_compares_numbers_by_value
            unique_compound_index_constrains_combination
            insert_many_unique_violation_stores_nothing
            upsert_many_unique_violation_stores_nothing
            delete_frees_unique_key
            indexes_do_not_change_results
            property_queries_match_reference_evaluator
            property_array_free_queries_match_reference_evaluator
            property_updates_match_reference
            filter_integer_equals_float
            filter_equality_respects_types
            filter_range_is_type_bracketed
            filter_strings_compare_by_code_point
            filter_null_matches_null_and_missing
            filter_ne_matches_missing
            filter_nin_matches_missing
            filter_exists_true_and_false
            filter_array_matches_any_element
            filter_array_whole_value_equality
            filter_array_range_any_element
            filter_nested_paths
            filter_paths_through_arrays
            filter_in_with_mixed_types
            filter_not_is_the_complement
            filter_and_or_combine
            filter_empty_and_or_are_invalid
            filter_malformed_is_invalid_and_named
            filter_builder_bad_path_is_invalid
            filter_object_equality_ignores_key_order
            filter_several_conditions_on_one_field
            filter_on_id
            sort_orders_type_classes
            sort_arrays_by_smallest_or_largest_element
            sort_paths_through_arrays_of_objects
            sort_ties_break_by_id
            sort_descending_keeps_id_tie_break_ascending
            sort_on_several_fields
            sort_nested_path_and_mixed_numbers
            sort_on_id
            projection_includes_named_fields_and_id
            projection_excludes_named_fields
            projection_without_id_and_mixing_refused
            projection_through_arrays
            projection_after_sort_may_drop_sort_key
            limit_zero_returns_nothing
            offset_past_end_returns_nothing
            offset_and_limit_page_through
            query_from_json_equals_builder
            concurrent_increments_lose_no_update
            concurrent_inserts_all_land
            concurrent_same_id_inserts_one_wins
            one_mib_document_round_trips
            unicode_keys_and_values
            hostile_values_are_stored_literally
            unusual_ids_work
            typed_collection_round_trips
            handles_share_one_collection
            txn_commit_makes_writes_visible
            txn_rollback_discards_writes
            txn_drop_rolls_back
            txn_reads_its_own_writes
            txn_uncommitted_writes_are_invisible_outside
            txn_spans_collections_atomically
            txn_handles_refuse_use_after_finish
            txn_failed_write_inside_then_rollback
            txn_overtaken_by_concurrent_write_aborts
        }
    };
}

#[cfg(test)]
mod tests {
    /// Every `pub async fn` of the suite is in the macro's list, and nothing else is.
    #[test]
    fn every_suite_function_is_instantiated() {
        let sources = [
            include_str!("suite/backend.rs"),
            include_str!("suite/crud.rs"),
            include_str!("suite/index.rs"),
            include_str!("suite/property.rs"),
            include_str!("suite/query.rs"),
            include_str!("suite/scale.rs"),
            include_str!("suite/stream.rs"),
            include_str!("suite/transaction.rs"),
        ];
        let mut defined: Vec<&str> = sources
            .iter()
            .flat_map(|s| s.lines())
            .filter_map(|l| l.strip_prefix("pub async fn "))
            .map(|l| l.split('(').next().unwrap_or_default())
            .collect();
        let mut listed = super::CASES.to_vec();
        defined.sort_unstable();
        listed.sort_unstable();
        assert_eq!(defined, listed);
        assert!(listed.len() >= 80, "the suite has {} behaviours", listed.len());
    }
}
