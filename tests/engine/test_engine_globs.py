"""Globs match as pachd matches them: ohmyglob's own pattern tables, then pachd's handling of the
pattern and the paths, then datums built from them.

The ohmyglob rows are facts from github.com/pachyderm/ohmyglob (the version Pachyderm's go.mod
pins, d5b4777): glob_test.go TestGlob, extglob_test.go TestExtGlob and TestNegationGlob,
capture_test.go TestCaptureGlob and TestReplaceGlob. pachd compiles globs with "/" as the only
separator, so rows written there for another separator ("." or "f") have it swapped with "/",
and the three separator-less rows whose match needs a "*" or "!(..)" to run across a "/" are left
out (their "/" counterparts are in the table).
"""
from __future__ import annotations

import pytest
from engine_testlib import put

from pix2pix.errors import SpecError
from pix2pix.pachyderm import datums as dm
from pix2pix.pachyderm.spec import build_input
from pix2pix.pachyderm.globs import (
    check_glob,
    compile_glob,
    compile_raw,
    expand,
    match,
    normalize,
)

# -- ohmyglob's tables: (pattern, path, matches) ---------------------------------------------------
GLOB_TEST = [  # glob_test.go TestGlob: *, **, ?, [..], POSIX names, {..}, \
    ('* ?at * eyes', 'my cat has very bright eyes', True),
    ('', '', True),
    ('', 'b', False),
    ('*ä', 'åä', True),
    ('abc', 'abc', True),
    ('a*c', 'abc', True),
    ('a*c', 'a12345c', True),
    ('a?c', 'a1c', True),
    ('a/b', 'a/b', True),
    ('a/*', 'a/b', True),
    ('a/**', 'a/b/c', True),
    ('a/?/c', 'a/b/c', True),
    ('a/?/?', 'a/b/c', True),
    ('?at', 'cat', True),
    ('?at', 'fat', True),
    ('*', 'abc', True),
    ('\\*', '*', True),
    ('**', 'a/b/c', True),
    ('?at', 'at', False),
    ('?at', '/at', False),
    ('a/*', 'a/b/c', False),
    ('a/?/c', 'a/bb/c', False),
    ('*', 'a/b/c', False),
    ('*test', 'this is a test', True),
    ('this*', 'this is a test', True),
    ('*is *', 'this is a test', True),
    ('*is*a*', 'this is a test', True),
    ('**test**', 'this is a test', True),
    ('**is**a***test*', 'this is a test', True),
    ('*is', 'this is a test', False),
    ('*no*', 'this is a test', False),
    ('[!a]*', 'this is a test3', True),
    ('*abc', 'abcabc', True),
    ('**abc', 'abcabc', True),
    ('???', 'abc', True),
    ('?*?', 'abc', True),
    ('?*?', 'ac', True),
    ('sta', 'stagnation', False),
    ('sta*', 'stagnation', True),
    ('sta?', 'stagnation', False),
    ('sta?n', 'stagnation', False),
    ('{abc,def}ghi', 'defghi', True),
    ('{abc,abcd}a', 'abcda', True),
    ('{a,ab}{bc,f}', 'abc', True),
    ('{*,**}{a,b}', 'ab', True),
    ('{*,**}{a,b}', 'ac', False),
    ('[a-z]', 'c', True),
    ('[a-z]', 'C', False),
    ('[[:alpha:]]', 'C', True),
    ('[[:alpha:]]', '5', False),
    ('[[:^alpha:]]', '.', True),
    ('[^[:alpha:]]', '.', True),
    ('[[:space:]]', '\t', True),
    ('[[:graph:]]', '!', True),
    ('[![:graph:]]', '!', False),
    ('/{rate,[a-z][a-z][a-z]}*', '/rate', True),
    ('/{rate,[0-9][0-9][0-9]}*', '/rate', True),
    ('/{rate,[a-z][a-z][a-z]}*', '/usd', True),
    ('{*/google/*,*/yandex/*}', 'www/google/com', True),
    ('{*/google/*,*/yandex/*}', 'www/yandex/com', True),
    ('{*/google/*,*/yandex/*}', 'yandex/com', False),
    ('{*/google/*,*/yandex/*}', 'google/com', False),
    ('{*/google/*,yandex/*}', 'www/google/com', True),
    ('{*/google/*,yandex/*}', 'yandex/com', True),
    ('{*/google/*,yandex/*}', 'www/yandex/com', False),
    ('{*/google/*,yandex/*}', 'google/com', False),
    ('*//{,*.}example.com', 'https://www.example.com', True),
    ('*//{,*.}example.com', 'http://example.com', True),
    ('*//{,*.}example.com', 'http://example.com.net', False),
    ('*/*/*', 'foo/bb/aa/rr', False),
    ('**/**/**', 'foo/bb/aa/rr', True),
    ('[a-z][!a-x]*cat*[h][!b]*eyes*', 'my cat has very bright eyes', True),
    ('[a-z][!a-x]*cat*[h][!b]*eyes*', 'my dog has very bright eyes', False),
    ('google.com', 'google.com', True),
    ('google.com', 'gobwas.com', False),
    ('https://*.google.*', 'https://account.google.com', True),
    ('https://*.google.*', 'https://google.com', False),
    ('{https://*.google.*,*yandex.*,*yahoo.*,*mail.ru}', 'http://google.com', False),
    ('{https://*gobwas.com,http://exclude.gobwas.com}', 'https://safe.gobwas.com', True),
    ('{https://*gobwas.com,http://exclude.gobwas.com}', 'http://safe.gobwas.com', False),
    ('{https://*gobwas.com,http://exclude.gobwas.com}', 'http://exclude.gobwas.com', True),
    ('{abc*[a-c]def,abc?[d-g]def,abc[zte]?def}', 'abczqdef', True),
    ('{abc*def,abc?def,abc[zte]def}', 'abczdef', True),
    ('abc*', 'abcdef', True),
    ('abc*', 'af', False),
    ('*def', 'abcdef', True),
    ('*def', 'af', False),
    ('ab*ef', 'abcdef', True),
    ('ab*ef', 'af', False),
]

EXTGLOB_TEST = [  # extglob_test.go TestExtGlob: (..) @(..) *(..) +(..) ?(..), nested
    ('*.(a|b)', 'a.a.a', True),
    ('*.(a|b)', 'a.a', True),
    ('*.(a|b)', 'a.b', True),
    ('*.(a|b)', 'a.bb', False),
    ('*.(a|b)', 'a.ccc', False),
    ('*.(a|b)', 'c.a', True),
    ('*.(a|b)', 'd.a.d', False),
    ('*.(a|b)*', 'a.a.a', True),
    ('*.(a|b)*', 'a.a', True),
    ('*.(a|b)*', 'a.b', True),
    ('*.(a|b)*', 'a.bb', True),
    ('*.(a|b)*', 'a.ccc', False),
    ('*.(a|b)*', 'c.a', True),
    ('*.(a|b)*', 'd.a.d', True),
    ('??', 'a', False),
    ('??', 'aab', False),
    ('?', 'aa', False),
    ('?', 'aab', False),
    ('?', 'a', True),
    ('?(a*|b)', 'ax', True),
    ('?(a|b)', 'a', True),
    ('?(ab)/..?(/)', 'ab/../', True),
    ('?(ab|??)/..?(/)', 'ab/../', True),
    ('?@(a|b)*@(c)d', 'abcd', True),
    ('?b/..?(/)', 'ab/../', True),
    ('(*(a|b\\[)|f*)', 'foo', True),
    ('(a)', 'a', True),
    ('(a+|b)*', 'zz', False),
    ('(a+|b)+', 'abcdef', False),
    ('(a+|b)+', 'abcfef', False),
    ('(a+|b)+', 'abcfefg', False),
    ('(a+|b)+', 'abd', False),
    ('(a+|b)+', 'abef', False),
    ('(a+|b)+', 'acd', False),
    ('(a|d).(a|b)*', 'a.a', True),
    ('(a|d).(a|b)*', 'a.b', True),
    ('(a|d).(a|b)*', 'a.bb', True),
    ('(b)', 'a', False),
    ('[!/][!/]/../', 'ab/../', True),
    ('[^/][^/]/../', 'ab/../', True),
    ('[a*\\(]*z', 'abcx', False),
    ('[a*\\(]*z', 'bbc', False),
    ('[a*\\(]*z', 'abcz', True),
    ('@(??)/..?(/)', 'ab/../', True),
    ('@(??|a*)/..?(/)', 'ab/../', True),
    ('@(?b|?b)/..?(/)', 'ab/../', True),
    ('@(a?|?b)/..?(/)', 'ab/../', True),
    ('@(a)b', 'aa', False),
    ('@(a*)/..?(/)', 'ab/../', True),
    ('@(ab|?b)/..?(/)', 'ab/../', True),
    ('@(ab|+([!/]))/..?(/)', 'ab/../', True),
    ('@(ab|+([^/]))/..?(/)', 'ab/../', True),
    ('@(ab|a*(b))*(c)d', 'abbcd', True),
    ('@(ab|a*(b))*(c)d', 'acd', True),
    ('@(ab|a*@(b))*(c)d', 'abcd', True),
    ('@(b+(c)d|e*(f)g?|?(h)i@(j|k))', 'effgz', True),
    ('@(b+(c)d|e*(f)g?|?(h)i@(j|k))', 'efgz', True),
    ('@(b+(c)d|e*(f)g?|?(h)i@(j|k))', 'egz', True),
    ('@(b+(c)d|e+(f)g?|?(h)i@(j|k))', 'egz', False),
    ('@(c)b', 'aab', False),
    ('@(foo|f|fo)*(f|of+(o))', 'foofoofo', True),
    ('@(x)', 'x', True),
    ('*;[1-9]*([0-9])', '"MS.FILE;1"', False),
    ('*;[1-9]*([0-9])', '"MS.FILE;13"', False),
    ('*;[1-9]*([0-9])*', '"MS.FILE;13"', True),
    ('*;[1-9]**([0-9])*', '"MS.FILE;13"', True),
    ('*?(a)bc', '123abc', True),
    ('*.+(b|d)', 'a.', False),
    ('*.+(b|d)', 'a.a.a', False),
    ('*.+(b|d)', 'a.a', False),
    ('*.+(b|d)', 'a.ccc', False),
    ('*.+(b|d)', 'c.a', False),
    ('*.+(b|d)', 'a.b', True),
    ('*.+(b|d)', 'a.bb', True),
    ('*.+(b|d)', 'd.a.d', True),
    ('*.c?(c)', 'file.C', False),
    ('*.c?(c)', 'file.ccc', False),
    ('*.c?(c)', 'file.c', True),
    ('*.c?(c)', 'file.cc', True),
    ('*(@(a))a@(c)', 'baaac', False),
    ('*(@(a))a@(c)', 'c', False),
    ('*(@(a))a@(c)', 'aaac', True),
    ('*(@(a))a@(c)', 'aac', True),
    ('*(@(a))a@(c)', 'ac', True),
    ('*(*(f)*(o))', 'fffooofoooooffoofffooofff', True),
    ('*(*(of*(o)x)o)', 'ofoooxoofxoofoooxoofxofo', False),
    ('*(*(of*(o)x)o)', 'ofoooxoofxo', True),
    ('*(*(of*(o)x)o)', 'ofoooxoofxoofoooxoofxo', True),
    ('*(*(of*(o)x)o)', 'ofoooxoofxoofoooxoofxoo', True),
    ('*(*(of*(o)x)o)', 'ofoooxoofxoofoooxoofxooofxofxo', True),
    ('*(*(of*(o)x)o)', 'ofxoofxo', True),
    ('*(0|1|3|5|7|9)', '""', False),
    ('*(0|1|3|5|7|9)', '2468', False),
    ('*(0|1|3|5|7|9)', '', True),
    ('*(0|1|3|5|7|9)', '137577991', True),
    ('*(a)', 'a', True),
    ('*(a+|b)', 'abef', False),
    ('*(a|b\\[)', '*(a|b[)', False),
    ('*(a|b\\[)', 'foo', False),
    ('*(b+(c)d|e*(f)g?|?(h)i@(j|k))', 'egzefffgzbcdij', True),
    ('*(f*(o))', 'foooofofx', False),
    ('*(f*(o))', 'ofooofoofofooo', False),
    ('*(f*(o))', 'xfoooofof', False),
    ('*(f*(o))', 'ffo', True),
    ('*(f*(o))', 'fofo', True),
    ('*(f*(o))', 'fooofoofofooo', True),
    ('*(f*(o))', 'foooofo', True),
    ('*(f*(o))', 'foooofof', True),
    ('*(f*(o)x)', 'foooxfooxofoxfooox', False),
    ('*(f*(o)x)', 'foooxfooxfoxfooox', True),
    ('*(f*(o)x)', 'foooxfooxfxfooox', True),
    ('*(f+(o))', 'foooofof', False),
    ('*(fo|foo)', 'fofoofoofofoo', True),
    ('*(of+(o))', 'ofoofo', True),
    ('*(of+(o)|f)', 'ofoofo', True),
    ('*(of|oof+(o))', 'oofooofo', True),
    ('*(oxf+(ox))', 'oxfoxfox', False),
    ('*(oxf+(ox))', 'oxfoxoxfox', True),
    ('*\\;[1-9]*([0-9])', '"MS.FILE;"', False),
    ('*\\;[1-9]*([0-9])', '"MS.FILE;13"', False),
    ('*\\;[1-9]*([0-9])', '"MS.FILE"', False),
    ('*\\;[1-9]*([0-9])', '"VMS.FILE;"', False),
    ('+(??)/..?(/)', 'ab/../', True),
    ('+(??|a*)/..?(/)', 'ab/../', True),
    ('+(?b)/..?(/)', 'ab/../', True),
    ('+(?b|?b)/..?(/)', 'ab/../', True),
    ('+()c', 'abc', False),
    ('+()x', 'abc', False),
    ('+([!/])/..?(/)', 'ab/../', True),
    ('+([!/])/..@(/)', 'ab/../', True),
    ('+([!/])/../', 'ab/../', True),
    ('+([^/])/..?(/)', 'ab/../', True),
    ('+([^/])/../', 'ab/../', True),
    ('+([0-7])', '09', False),
    ('+([0-7])', '0377', True),
    ('+([0-7])', '07', True),
    ('+(*)c', 'abc', True),
    ('+(*)x', 'abc', False),
    ('+(a)', 'a', True),
    ('+(a*)/..?(/)', 'ab/../', True),
    ('+(a|b\\[)*', 'abcx', True),
    ('+(a|b\\[)*', 'b[c', True),
    ('+(ab)/..?(/)', 'ab/../', True),
    ('a??b', 'a', False),
    ('a??b', 'aa', False),
    ('a??b', 'aab', False),
    ('a?(a|b)', 'bb', False),
    ('a?(a|b)', 'a', True),
    ('a?(b*)', 'ax', False),
    ('a?(x)', 'ab', False),
    ('a?(x)', 'ba', False),
    ('a?(x)', 'a', True),
    ('a?(x)', 'ax', True),
    ('a[b*(foo|bar)]d', 'abc', False),
    ('a[b*(foo|bar)]d', 'acd', False),
    ('a[b*(foo|bar)]d', 'abd', True),
    ('a*?(x)', 'ba', False),
    ('a*?(x)', 'a', True),
    ('a*?(x)', 'ab', True),
    ('a*?(x)', 'ax', True),
    ('a\\(*b', 'ab', False),
    ('a\\(*b', 'a((((b', True),
    ('a\\(*b', 'a((b', True),
    ('a\\(*b', 'a(b', True),
    ('a+(b|c)d', 'abc', False),
    ('a+(b|c)d', 'abd', True),
    ('a+(b|c)d', 'acd', True),
    ('ab?*(e|f)', '123abc', False),
    ('ab?*(e|f)', 'ab', False),
    ('ab?*(e|f)', 'abcdef', False),
    ('ab?*(e|f)', 'abcfefg', False),
    ('ab?*(e|f)', 'acd', False),
    ('ab?*(e|f)', 'abcfef', True),
    ('ab?*(e|f)', 'abd', True),
    ('ab?*(e|f)', 'abef', True),
    ('ab*(e|f)', 'abcdef', False),
    ('ab*(e|f)', 'abcfef', False),
    ('ab*(e|f)', 'abcfefg', False),
    ('ab*(e|f)', 'ab', True),
    ('ab*(e|f)', 'abef', True),
    ('ab**', 'ab', True),
    ('ab**', 'abcdef', True),
    ('ab**', 'abcfef', True),
    ('ab**', 'abcfefg', True),
    ('ab**', 'abef', True),
    ('ab**(e|f)', 'ab', True),
    ('ab**(e|f)', 'abab', True),
    ('ab**(e|f)', 'abcdef', True),
    ('ab**(e|f)', 'abcfef', True),
    ('ab**(e|f)', 'abcfefg', True),
    ('ab**(e|f)', 'abd', True),
    ('ab**(e|f)', 'abef', True),
    ('ab**(e|f)g', 'ab', False),
    ('ab**(e|f)g', 'abcdef', False),
    ('ab**(e|f)g', 'abcfef', False),
    ('ab**(e|f)g', 'abef', False),
    ('ab**(e|f)g', 'abcfefg', True),
    ('ab***ef', 'ab', False),
    ('ab***ef', 'abcfefg', False),
    ('ab***ef', 'abcdef', True),
    ('ab***ef', 'abcfef', True),
    ('ab***ef', 'abef', True),
    ('ab*+(e|f)', 'ab', False),
    ('ab*+(e|f)', 'abcfefg', False),
    ('ab*+(e|f)', 'abcdef', True),
    ('ab*+(e|f)', 'abcfef', True),
    ('ab*+(e|f)', 'abef', True),
    ('ab*d+(e|f)', '123abc', False),
    ('ab*d+(e|f)', 'ab', False),
    ('ab*d+(e|f)', 'abcfef', False),
    ('ab*d+(e|f)', 'abcfefg', False),
    ('ab*d+(e|f)', 'abd', False),
    ('ab*d+(e|f)', 'abef', False),
    ('ab*d+(e|f)', 'acd', False),
    ('ab*d+(e|f)', 'abcdef', True),
    ('b?(a|b)', 'a', False),
    ('b?(a|b)', 'ba', True),
    ('b?*(e|f)', 'ab', False),
    ('b?*(e|f)', 'abcdef', False),
    ('b?*(e|f)', 'abcfef', False),
    ('b?*(e|f)', 'abcfefg', False),
    ('b?*(e|f)', 'abef', False),
    ('no-file+(a*(c)|b)stuff', 'abc', False),
    ('no-file+(a|b)stuff', 'abc', False),
    ('para?([345]|99)1', 'para381', False),
    ('para?([345]|99)1', 'para991', True),
    ('para@(chute|graph)', 'paramour', False),
    ('para@(chute|graph)', 'paragraph', True),
    ('para*([0-9])', 'paragraph', False),
    ('para*([0-9])', 'para', True),
    ('para*([0-9])', 'para13829383746592', True),
    ('para+([0-9])', 'para', False),
    ('para+([0-9])', 'para987346523', True),
]

NEGATION_TEST = [  # extglob_test.go TestNegationGlob: !(..), alone, nested and mixed
    ('\\\\$..!(!())', '\\$..', True),
    ('!(*.js|*.json)', 'a.js', False),
    ('!(*.js|*.json)', 'a.js.gz', True),
    ('!(*.js|*.json)', 'a.json.gz', True),
    ('!(*.js|*.json)', 'a.gz', True),
    ('a*!(x)', 'a', True),
    ('a*!(x)', 'ab', True),
    ('a*!(x)', 'ba', False),
    ('a*!(x)', 'ax', True),
    ('a!(x)', 'a', True),
    ('a!(x)', 'ab', True),
    ('a!(x)', 'ba', False),
    ('a!(x)', 'ax', False),
    ('!(x)', 'foo', True),
    ('!(x)', 'foo/bar', False),
    ('!(x)*', 'foo', True),
    ('!(foo)', 'foo', False),
    ('!(!(foo))', 'foo', True),
    ('!(!(!(foo)))', 'foo', False),
    ('!(!(!(!(foo))))', 'foo', True),
    ('!(foo)*', 'foo', False),
    ('!(foo)', 'foobar', True),
    ('!(foo)*', 'foobar', False),
    ('!(*.*).!(*.*)', 'moo.cow', False),
    ('!(*.*).!(*.*)', 'mad.moo.cow', False),
    ('mu!(*(c))?.pa!(*(z))?', 'mucca.pazza', False),
    ('!(f)', 'fff', True),
    ('*(!(f))', 'fff', True),
    ('+(!(f))', 'fff', True),
    ('!(f)', 'ooo', True),
    ('*(!(f))', 'ooo', True),
    ('+(!(f))', 'ooo', True),
    ('!(f)', 'foo', True),
    ('*(!(f))', 'foo', True),
    ('+(!(f))', 'foo', True),
    ('!(f)', 'f', False),
    ('*(!(f))', 'f', False),
    ('+(!(f))', 'f', False),
    ('@(!(z*)|*x)', 'foot', True),
    ('@(!(z*)|*x)', 'zoot', False),
    ('@(!(z*)|*x)', 'foox', True),
    ('@(!(z*)|*x)', 'zoox', True),
    ('*(!(foo))', 'foo', False),
    ('!(foo)b*', 'foob', False),
    ('!(foo)b*', 'foobb', False),
    ('*.!(js|css)', 'bar.min.js', True),
    ('!*.+(js|css)', 'bar.min.js', False),
    ('*.+(js|css)', 'bar.min.js', True),
    ('*(*.json|!(*.js))', 'other.bar', True),
    ('*(*.json|!(*.js))*', 'other.bar', True),
    ('!(*(*.json|!(*.js)))*', 'other.bar', False),
    ('+(*.json|!(*.js))', 'other.bar', True),
    ('@(*.json|!(*.js))', 'other.bar', True),
    ('?(*.json|!(*.js))', 'other.bar', True),
    ('*.!(js)*.!(xy)', 'asd.js.xyz', False),
    ('*.!(js)*.!(xy)*', 'asd.js.xyz', False),
    ('*.!(js)*.!(xyz)', 'asd.js.xyz', False),
    ('*.!(js)*.!(xyz)*', 'asd.js.xyz', False),
    ('*.!(js).!(xy)', 'asd.js.xyz', False),
    ('*.!(js).!(xy)*', 'asd.js.xyz', False),
    ('*.!(js).!(xyz)', 'asd.js.xyz', False),
    ('*.!(js).!(xyz)*', 'asd.js.xyz', False),
    ('*.!(j)', 'a-integration-test.js', True),
    ('*.!(js)', 'a-integration-test.js', False),
    ('!(*-integration-test.js)', 'a-integration-test.js', False),
    ('*-!(integration-)test.js', 'a-integration-test.js', True),
    ('*-!(integration)-test.js', 'a-integration-test.js', False),
    ('*!(-integration)-test.js', 'a-integration-test.js', True),
    ('*!(-integration-)test.js', 'a-integration-test.js', True),
    ('*!(integration)-test.js', 'a-integration-test.js', True),
    ('*!(integration-test).js', 'a-integration-test.js', True),
    ('*-!(integration-test).js', 'a-integration-test.js', True),
    ('*-!(integration-test.js)', 'a-integration-test.js', True),
    ('*-!(integra)tion-test.js', 'a-integration-test.js', False),
    ('*-integr!(ation)-test.js', 'a-integration-test.js', False),
    ('*-integr!(ation-t)est.js', 'a-integration-test.js', False),
    ('*-i!(ntegration-)test.js', 'a-integration-test.js', False),
    ('*i!(ntegration-)test.js', 'a-integration-test.js', True),
    ('*te!(gration-te)st.js', 'a-integration-test.js', True),
    ('*-!(integration)?test.js', 'a-integration-test.js', False),
    ('*?!(integration)?test.js', 'a-integration-test.js', True),
    ('*!(js)', 'foo.js.js', True),
    ('*!(.js)', 'foo.js.js', True),
    ('*!(.js.js)', 'foo.js.js', True),
    ('*!(.js.js)*', 'foo.js.js', True),
    ('*(.js.js)', 'foo.js.js', False),
    ('**(.js.js)', 'foo.js.js', True),
    ('*(!(.js.js))', 'foo.js.js', True),
    ('*.!(js)*.!(js)', 'foo.js.js', False),
    ('*.!(js)+', 'foo.js.js', False),
    ('!(*(.js.js))', 'foo.js.js', True),
    ('*.!(js)', 'foo.js.js', True),
    ('*.!(js)*', 'foo.js.js', False),
    ('*.!(js)*.js', 'foo.js.js', False),
    ('*/**(.*)', 'a/foo.js.js', True),
    ('*/**(.*.*)', 'a/foo.js.js', True),
    ('a/**(.*.*)', 'a/foo.js.js', True),
    ('*/**(.js.js)', 'a/foo.js.js', True),
    ('a/f*(!(.js.js))', 'a/foo.js.js', True),
    ('a/!(*(.*))', 'a/foo.js.js', True),
    ('a/!(+(.*))', 'a/foo.js.js', True),
    ('a/!(*(.*.*))', 'a/foo.js.js', True),
    ('*/!(*(.*.*))', 'a/foo.js.js', True),
    ('a/!(*(.js.js))', 'a/foo.js.js', True),
    ('*(*.json|!(*.js))', 'testjson.json', True),
    ('+(*.json|!(*.js))', 'testjson.json', True),
    ('@(*.json|!(*.js))', 'testjson.json', True),
    ('?(*.json|!(*.js))', 'testjson.json', True),
    ('*(*.json|!(*.js))', 'foojs.js', False),
    ('*(*.json|!(*.js))*', 'foojs.js', True),
    ('+(*.json|!(*.js))', 'foojs.js', False),
    ('@(*.json|!(*.js))', 'foojs.js', False),
    ('?(*.json|!(*.js))', 'foojs.js', False),
    ('!(*.a|*.b|*.c)', 'a', True),
    ('!(*.[a-b]*)', 'a.a', False),
    ('!(*.a|*.b|*.c)', 'a.a', False),
    ('!(*[a-b].[a-b]*)', 'a.a', False),
    ('!*.(a|b)', 'a.a', False),
    ('!*.(a|b)*', 'a.a', False),
    ('*.!(a)', 'a.a', False),
    ('*.+(b|d)', 'a.a', False),
    ('!(*.[a-b]*)', 'a.a.a', False),
    ('!(*[a-b].[a-b]*)', 'a.a.a', False),
    ('!*.(a|b)', 'a.a.a', False),
    ('!*.(a|b)*', 'a.a.a', False),
    ('!(*.a|*.b|*.c)', 'a.abcd', True),
    ('!(*.a|*.b|*.c)', 'c.cbad', True),
    ('!(*.a|*.b|*.c)*', 'a.abcd', False),
    ('*.!(a|b|c)', 'a.abcd', True),
    ('*.!(a|b|c)*', 'a.abcd', False),
    ('!(*.*)', 'a.b', False),
    ('!(*.[a-b]*)', 'a.b', False),
    ('!(*[a-b].[a-b]*)', 'a.b', False),
    ('!*.(a|b)', 'a.b', False),
    ('!*.(a|b)*', 'a.b', False),
    ('!(*.[a-b]*)', 'a.bb', False),
    ('!(*[a-b].[a-b]*)', 'a.bb', False),
    ('!*.(a|b)', 'a.bb', False),
    ('!*.(a|b)*', 'a.bb', False),
    ('!*.(a|b)', 'a.ccc', False),
    ('!*.(a|b)*', 'a.ccc', False),
    ('*.+(b|d)', 'a.ccc', False),
    ('!(*.js)', 'a.js', False),
    ('*.!(js)', 'a.js', False),
    ('!(*.js)', 'a.js.js', False),
]


@pytest.mark.parametrize("pattern,path,expected", GLOB_TEST + EXTGLOB_TEST + NEGATION_TEST)
def test_ohmyglob_tables(pattern: str, path: str, expected: bool):
    assert bool(compile_raw(pattern).fullmatch(path)) is expected


CAPTURE_TEST = [  # capture_test.go TestCaptureGlob: (pattern, path, its groups; None: no match)
    ('test/(a|b)', 'hi/123', None),
    ('test/(a|b)/x.go', 'test/a/x.go', ('a',)),
    ('test/(a|b)/x.go', 'test/b/x.go', ('b',)),
    ('test/a*(a|b)/x.go', 'test/a/x.go', ('',)),
    ('test/a*(a|b)/x.go', 'test/aa/x.go', ('a',)),
    ('test/a*(a|b)/x.go', 'test/ab/x.go', ('b',)),
    ('test/a*(a|b)/x.go', 'test/aba/x.go', ('ba',)),
    ('test/+(a|b)/x.go', 'test/a/x.go', ('a',)),
    ('test/+(a|b)/x.go', 'test/b/x.go', ('b',)),
    ('test/+(a|b)/x.go', 'test/ab/x.go', ('ab',)),
    ('test/+(a|b)/x.go', 'test/aba/x.go', ('aba',)),
    ('test/a?(a|b)/x.go', 'test/a/x.go', ('',)),
    ('test/a?(a|b)/x.go', 'test/ab/x.go', ('b',)),
    ('test/a?(a|b)/x.go', 'test/aa/x.go', ('a',)),
    ('test/@(a|b)/x.go', 'test/a/x.go', ('a',)),
    ('test/@(a|b)/x.go', 'test/b/x.go', ('b',)),
    ('test/!(a|b)/x.go', 'test/x/x.go', ('x',)),
    ('test/!(a|b)/x.go', 'test/y/x.go', ('y',)),
    ('test/(a|b)/(*).go', 'test/a/x.go', ('a', 'x')),
    ('test/+(a|b)/(*).go', 'test/ab/x.go', ('ab', 'x')),
    ('test/@(a|b)/@(*).go', 'test/a/x.go', ('a', 'x')),
    ('test/a*(a|b)/*(*).go', 'test/aaaa/x.go', ('aaa', 'x')),
    ('test/a?(a|b)/?(*).go', 'test/aa/x.go', ('a', 'x')),
    ('test*(/?(+(a|b)/*.go))', 'test/a/x.go', ('/a/x.go', 'a/x.go', 'a')),
]


@pytest.mark.parametrize("pattern,path,groups", CAPTURE_TEST)
def test_ohmyglob_captures(pattern: str, path: str, groups: tuple[str, ...] | None):
    m = compile_raw(pattern).fullmatch(path)
    # ohmyglob reports a group that took no part as "", where Python says None
    assert (None if m is None else tuple(g or "" for g in m.groups())) == groups


REPLACE_TEST = [  # capture_test.go TestReplaceGlob: (pattern, path, joinOn template, key)
    ('name=(*)', 'name=adele', '$1', 'adele'),
    ('name=(*)', 'n[.ipxi', '$1', ''),
    ('name=(*)', 'name=adele', '${1}1', 'adele1'),
    ('name=(*)', 'name=adele', '$$1', '$1'),
    ('(((((((((??)))))))))*(a|b)', 'xfbaaaababbbabaa', '$10', 'baaaababbbabaa'),
    ('name=(*)/year=(*)/(*).dat', 'name=adele/year=2016/photos.dat', '$1', 'adele'),
    ('name=(*)/year=(*)/(*).dat', 'name=adele/year=2016/photos.dat', '$3 of $1 from $2',
     'photos of adele from 2016'),
    ('name=(*)/year=(*)/(*).dat', 'name=adele/year=2016/photos.dat', '$0',
     'name=adele/year=2016/photos.dat'),
    ('name=!(adele)/year=(2?1(?))/(*).dat', 'name=roxanne/year=2514/puzzle.dat',
     '$1 from the $3th year of the decade, obtained a $4',
     'roxanne from the 4th year of the decade, obtained a puzzle'),
]


@pytest.mark.parametrize("pattern,path,template,expected", REPLACE_TEST)
def test_ohmyglob_replace(pattern: str, path: str, template: str, expected: str):
    assert expand(compile_raw(pattern).fullmatch(path), template) == expected


def test_a_group_that_took_no_part_or_does_not_exist_expands_to_nothing():
    m = compile_raw("@(a|(b))").fullmatch("a")
    assert m.group(2) is None
    assert expand(m, "<$1|$2|$9>") == "<a||>"


@pytest.mark.parametrize("template,expected", [
    ("$x", "$x"), ("${1", "${1"), ("$", "$"), ("a$$b", "a$b"), ("${1}$1", "xx"), ("$1x", "xx")])
def test_expand_leaves_what_is_not_a_reference(template: str, expected: str):
    """glob.go ``extract``: only ``$digits`` and ``${digits}`` refer to a group."""
    assert expand(compile_raw("/(*)").fullmatch("/x"), template) == expected


def test_expand_refuses_a_leading_zero_that_crashes_pachd():
    # glob.go: "$01" parses to -1 and indexes the captures with it (a Go panic in the worker)
    with pytest.raises(SpecError, match=r"\$01"):
        expand(compile_raw("/(*)").fullmatch("/x"), "$01")
    assert expand(None, "$01") == ""  # no match, no captures: nothing to index


# -- what pachd does around the matcher ------------------------------------------------------------
@pytest.mark.parametrize("pattern,clean", [
    ("", "/"), ("/", "/"), (".", "/"), ("*.png", "/*.png"), ("/a/", "/a"), ("//a//b", "/a/b"),
    ("/a/./b/../c", "/a/c"), ("/../a", "/a"), ("../a", "/../a"), ("/a\\/", "/a\\")])
def test_patterns_are_cleaned_as_pachd_cleans_them(pattern: str, clean: str):
    """src/internal/pfsfile/pfsfile.go CleanPath (Go's path.Clean, then "/" + trimmed slashes),
    applied by src/server/pfs/server/server_file.go globFile and by pps's spec defaults."""
    assert normalize(pattern) == clean


GLOBFILE3 = ["/dir1/file1.1", "/dir1/file1.2", "/dir2/file2.1", "/dir2/file2.2"]


@pytest.mark.parametrize("pattern,expected", [
    ("**.2", ["/dir1/file1.2", "/dir2/file2.2"]), ("/dir1/*", ["/dir1/file1.1", "/dir1/file1.2"]),
    ("/*", ["/dir1", "/dir2"]), ("/", ["/"])])
def test_pachd_globfile3(pattern: str, expected: list[str]):
    """src/server/pfs/server/testing/server_test.go TestGlobFile3 (pachd lists the folders as
    "/dir1/"; the engine writes folders without the slash)."""
    assert match(pattern, GLOBFILE3) == expected


def test_pachd_globfile_counts():
    """server_test.go TestGlobFile, with 20 files a folder instead of 100."""
    n = 20
    files = [p for i in range(n) for p in (f"/file{i}", f"/dir1/file{i}", f"/dir2/dir3/file{i}")]
    counts = {g: len(match(g, files)) for g in ("*", "file*", "dir1/*", "dir2/dir3/*", "*/*",
                                                "dir2/dir3/file1?", "**file1?")}
    assert counts == {"*": n + 2, "file*": n, "dir1/*": n, "dir2/dir3/*": n, "*/*": n + 1,
                      "dir2/dir3/file1?": 10, "**file1?": 30}
    assert match("**", []) == []


def test_pachd_globfile2():
    """server_test.go TestGlobFile2: /1* over /0 ... /99."""
    expected = sorted(["/1", *(f"/1{i}" for i in range(10))])
    assert match("/1*", [f"/{i}" for i in range(100)]) == expected


@pytest.mark.parametrize("pattern", ["/*", "/**", "/?(x)", "/!(x)", "/*(a)"])
def test_only_the_glob_slash_selects_the_root(pattern: str):
    """src/server/pfs/server/paths.go: the root is "" once its "/" is trimmed, and only the glob
    "/" is let through for it."""
    assert compile_raw(pattern).fullmatch("/")  # ohmyglob alone would take it
    assert compile_glob(pattern).fullmatch("/") is None
    assert compile_glob("/").fullmatch("/")
    assert compile_glob("/").fullmatch("/a") is None


def test_a_backslash_before_the_first_wildcard_leaves_nothing_to_match():
    """src/internal/storage/paths.go GlobLiteralPrefix: pachd reads only paths that start with
    the raw text before the first glob character, backslash included."""
    assert compile_raw("/a\\b*").fullmatch("/abc")
    assert match("/a\\b*", ["/abc", "/a\\bc"]) == []
    assert match("/*\\b", ["/ab", "/x/b"]) == ["/ab"]  # after a wildcard the escape works


@pytest.mark.parametrize("pattern,selected", [
    ("/*.(png|jpg)", ["/a.png"]),  # the case: not the literal "/a.png|jpg"
    ("/**/*.png", ["/d/e.png"]),  # "**" is ".*": "/**/" needs a folder, unlike doublestar
    ("/a[!b]c", ["/a/c"]),  # a negated set does not exclude "/" (compiler.go KindList)
    ("/[[:digit:]]", ["/1", "/["]),  # parser.go keeps the outer "[" "]" of a POSIX name in the set
    ("/{a.png,d}", ["/a.png", "/d"]),  # folders match like files, without their "/"
    ("/{a.png,d", ["/a.png", "/d"]),  # lexer.go: an unclosed "{" is closed at the end
    ("/(a.png|d", ["/a.png", "/d"]),  # ... and so is an unclosed "("
    ("/a.png|jpg", ["/a.png|jpg"]), ("/x)", ["/x)"]), ("/x}", ["/x}"]), ("/x]", ["/x]"]),
    ("/x\\", []),  # the trailing "\" is dropped, but it is in the literal prefix "/x\"
    ("/(x+y|z)", ["/x+y|z)"]),  # "+" not before "(" starts text that runs past "|" and ")"
    ("/{q,(x|z)}", ["/q", "/x|z)"]),  # inside {..} the text of a (..) runs past "|" and ")"
])
def test_what_pachd_selects(pattern: str, selected: list[str]):
    """Consequences of ohmyglob's lexer.go, parser.go and compiler.go, read with pachd's
    globMatchFunction (src/server/pfs/server/paths.go)."""
    files = ["/a.png", "/a.png|jpg", "/b.gif", "/d/e.png", "/a/c", "/1", "/[", "/x)", "/x}",
             "/x]", "/x", "/z", "/x+y|z)", "/q", "/x|z)"]
    assert match(pattern, files) == sorted(selected)


@pytest.mark.parametrize("pattern,why", [
    ("[", "never closed"), ("/a[", "never closed"), ("/[a\\]", "never closed"),
    ("/[z-a]", "reversed"), ("/^(a)", "not an extglob"), ("/[]", "empty set"),
    ("/[!]", "empty set"), ("/[[:alpha:digit:]]", "overlap"), ("/a\uffff", "cannot match"),
    ("/a\ud800", "cannot match")])
def test_what_pachd_cannot_match_is_refused(pattern: str, why: str):
    assert why in check_glob(pattern)
    with pytest.raises(SpecError, match="not a valid glob") as e:
        compile_glob(pattern)
    assert repr(pattern) in str(e.value) and why in str(e.value)


# -- through the datums ----------------------------------------------------------------------------
def _ic(repo: str, files: list[str]) -> dm.InputCommit:
    return dm.InputCommit(repo=repo, branch="master", commit="c" * 32,
                          tree={f: (f"h{f}", 1) for f in files})


def _datum_paths(inp: dict, trees: dict[str, list[str]]) -> list[list[str]]:
    commits = {(r, "master"): _ic(r, fs) for r, fs in trees.items()}
    return [[m.glob_path for m in d.matches] for d in dm.compute(build_input(inp), commits, salt="s")]


@pytest.mark.parametrize("glob,expected", [
    ("/*.(png|jpg)", [["/a.png"], ["/b.jpg"]]), ("/*.@(png|jpg)", [["/a.png"], ["/b.jpg"]]),
    ("/!(*.gif)", [["/a.png"], ["/b.jpg"]]), ("/+([ab]).*", [["/a.png"], ["/b.jpg"]]),
    ("/?(c).gif", [["/c.gif"]]), ("/*.*(g)if", [["/c.gif"]])])
def test_pfs_input_datums_follow_the_glob(glob: str, expected: list[list[str]]):
    files = ["/a.png", "/b.jpg", "/c.gif"]
    assert _datum_paths({"pfs": {"repo": "r", "glob": glob}}, {"r": files}) == expected


def test_join_keys_come_from_the_glob_captures():
    inp = {"join": [{"pfs": {"repo": "a", "glob": "/(*).(png|jpg)", "joinOn": "$1"}},
                    {"pfs": {"repo": "b", "glob": "/+([0-9])-(*).txt", "joinOn": "$2"}}]}
    got = _datum_paths(inp, {"a": ["/x.png", "/y.jpg", "/z.gif"],
                             "b": ["/1-x.txt", "/22-y.txt", "/3-z.txt"]})
    assert got == [["/x.png", "/1-x.txt"], ["/y.jpg", "/22-y.txt"]]


def test_group_keys_come_from_the_glob_captures():
    inp = {"group": [{"pfs": {"repo": "a", "glob": "/(?)-*.png", "groupBy": "$1"}}]}
    got = _datum_paths(inp, {"a": ["/1-a.png", "/1-b.png", "/2-a.png", "/22-a.png"]})
    assert got == [["/1-a.png", "/1-b.png"], ["/2-a.png"]]


def test_engine_glob_files_selects_what_pachd_does(eng):
    eng.create_repo("d")
    put(eng, "d", {p: "x" for p in GLOBFILE3})
    assert [f.path for f in eng.glob_files("d", "master", "/*/file?.(1|2)")] == GLOBFILE3
    got = [(f.path, f.type) for f in eng.glob_files("d", "master", "/!(dir1)")]
    assert got == [("/dir2", "dir")]
