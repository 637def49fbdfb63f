"""The SQL vocabulary of :mod:`wsgisec.whitelist.sqli`: which words do what in its grammar.

Drawn from the SQL grammars of SQLite (lang_expr), MySQL 8 (Expressions, Functions),
PostgreSQL and T-SQL; function names are those the public SQL-injection lists call
(PayloadsAllTheThings, sqlmap's payloads) plus SQLite's schema and blob functions.
"""

# Words that continue an expression after an operand (A -> E).
_INFIX = frozenset("and or xor is like glob regexp rlike match between in escape div mod collate "
                   "union intersect except from where having limit offset into join on then else "
                   "when using procedure sounds".split())
_STRONG_INFIX = frozenset("is like glob regexp rlike match between union intersect except having "
                          "procedure sounds".split())
_LOGIC = frozenset("and or xor".split())
# Words that start or prefix an operand (E -> E).
_PREFIX = frozenset("not exists distinct all any some case binary select".split())
_VALUES = frozenset("null true false current_user current_date current_time current_timestamp "
                    "user".split())
_AFTER_NOT = frozenset("like glob regexp rlike match in between null exists similar ilike".split())
_STATEMENTS = frozenset("select insert update delete drop create alter truncate exec execute declare "
                        "shutdown grant revoke merge replace rename call set waitfor begin commit "
                        "attach detach pragma vacuum reindex load copy handler with values".split())
# Names only SQL uses: calling one (or naming a catalog table) is an SQL sign on its own.
_SQL_FUNCTIONS = frozenset(
    "sleep benchmark pg_sleep load_file extractvalue updatexml char chr concat concat_ws group_concat "
    "ascii substring substr mid ord hex unhex cast convert version database schema current_user "
    "system_user session_user randomblob zeroblob sqlite_version sqlite_source_id "
    "sqlite_compileoption_get sqlite_compileoption_used sqlite_offset load_extension typeof unicode "
    "quote printf instr ifnull nullif iif coalesce likelihood likely unlikely last_insert_rowid "
    "changes total_changes soundex name_const make_set elt exp floor rand md5 sha1 sha2 unistr "
    "openrowset opendatasource db_name lo_get lo_import lo_export xmltype dbms_pipe dbms_lock "
    "utl_inaddr utl_http ctxsys waitfor is_srvrolemember has_dbaccess convert_from pg_read_file "
    "pg_ls_dir string_agg array_agg json_extract json_each json_tree count length upper lower "
    "trim ltrim rtrim replace abs round".split())
_SQL_NAMES = frozenset("sqlite_master sqlite_schema sqlite_temp_master sqlite_temp_schema sqlite_sequence "
                       "information_schema sysobjects syscolumns pg_catalog pg_tables pg_user pg_shadow "
                       "all_tables user_tables dual".split())
# Operators that can follow an operand.
_BINARY = frozenset("<=> == != <> <= >= || && << >> = < > + - * / % & | ^ -> ->>".split())
_UNARY = frozenset("- + ~ !".split())
# SQL functions whose names are also English words count when called "name (" in a bare
# value only if they are SQL-only; after a quote breakout any spacing counts.
_SPACED_BARE = frozenset("benchmark pg_sleep load_file extractvalue updatexml group_concat randomblob "
                         "zeroblob sqlite_version load_extension openrowset name_const make_set".split())
_COMPARE = frozenset("= == != <> <=> < > <= >=".split())
