"""The structured-field parser's fast path for the shape signers send agrees with the full
RFC 8941 parser on every input: the same result with the same types, or the full
parser's refusal (the fast path never accepts what the full parser refuses)."""

import base64

import pytest
from hypothesis import given, settings, strategies as st

from wsgisec import structured_fields as sf
from wsgisec.structured_fields import StructuredFieldError, Token


def typed(parsed):
    """The parse result with every value tagged by its type (Token is not str)."""
    def value(item):
        if isinstance(item, list):
            return [(value(inner), params(p)) for inner, p in item]
        return type(item).__name__, item

    def params(p):
        return {name: value(v) for name, v in p.items()}

    return {name: (value(v), params(p)) for name, (v, p) in parsed.items()}


def outcome(parse, text):
    try:
        return "ok", typed(parse(text))
    except StructuredFieldError:
        return "refused", None


def assert_agree(text):
    stripped = text.strip(" \t")
    fast = sf._parse_common(stripped)
    full = outcome(sf._parse_any, stripped)
    if fast is not None:
        assert full == ("ok", typed(fast)), text
    assert outcome(sf.parse_dictionary, text) == full, text


SIGNER_SHAPES = [
    'sig1=("@method" "@authority" "@path" "@query" "x-request-token");created=1700000000;'
    'keyid="k_0123";alg="hmac-sha256";nonce="n0nce-abcdefgh"',
    'sig1=:K2qGT5srn2OGbOIDzQ6kYT+ruaycnDAAUpKv+ePFfD0=:',
    'sig1=();created=1', 'sig-b25=("date" "@authority");created=1618884473;keyid="test-key-rsa-pss"',
    'a=:AQI=:, b=("x");tag=tok/en;v', 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:',
]


@pytest.mark.parametrize("text", SIGNER_SHAPES)
def test_signer_shapes_take_the_fast_path_and_agree(text):
    assert sf._parse_common(text) is not None
    assert_agree(text)


@pytest.mark.parametrize("text", [
    'a=1, a=2', 'a=(), a=()', 'a=:AQI=:, b=(), a=("x")', 'a=("x"', 'a="x', 'a=("x""y")', 'a=(), ', 'a=(),', 'a=:abc', 'a=:AQ=I:', 'a=:AQI:',
    'a=();created=1234567890123456', 'a=();created=01.5', 'a=();b="x\\"y"', 'a=("x";p=1)',
    'a=();b=?1', 'a=();b=?0', 'a=();B=1', 'a=() ;b=1', 'a=();b=1\n', 'a=(),b=()', 'a=(), \tb=()',
    'a=("x")\t,b=(),', 'a=(); b=1', 'a=();b=-', 'a=();b=1a', 'a=();b=a;c=1', 'a=();=1',
])
def test_edges_agree(text):
    assert_agree(text)


PIECES = ['sig1', 'a', '=', '(', ')', '"@method"', '"x y"', '" "', '""', ' ', ',', ', ', '\t', ';',
          'created', 'keyid', '=1', '=-1', '=0123', '=123456789012345', '=1234567890123456', '=1.5',
          '="k"', '="a;b"', '=tok/en', '=?1', ':AQI=:', ':AQ=:', '::', ':', '\\"', '"', '*', '-',
          'é', '\n', 'A']


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_any_text_gets_the_full_parsers_answer(text):
    assert_agree(text)


_key = st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,6}", fullmatch=True)
_plain = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
_bare = st.one_of(st.integers(-10**15 + 1, 10**15 - 1), _plain, st.booleans(),
                  st.binary(max_size=12), st.from_regex(r"[A-Za-z*][A-Za-z0-9:/.]{0,6}", fullmatch=True).map(Token))
_params = st.dictionaries(_key, _bare, max_size=4)
_member = st.one_of(
    st.tuples(st.lists(st.tuples(_plain, st.just({})), max_size=5), _params),
    st.tuples(st.binary(max_size=32), _params),
    st.tuples(_bare, _params))


@settings(max_examples=1500, deadline=None)
@given(st.dictionaries(_key, _member, min_size=1, max_size=4))
def test_serialized_dictionaries_agree(members):
    """Dictionaries of every type, as a serializer writes them: the fast path reads the
    signer shapes among them and agrees with the full parser on all."""
    text = sf.serialize_dictionary(members)
    assert_agree(text)
    assert_agree(text.replace(", ", ","))


def test_byte_sequences_decode_like_the_full_parser():
    encoded = base64.b64encode(bytes(range(32))).decode()
    assert sf.parse_dictionary(f"sig1=:{encoded}:")["sig1"] == (bytes(range(32)), {})
