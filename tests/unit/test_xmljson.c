/*
 * test_xmljson.c — unit tests for transforms/xmljson.c and xml_node_serialize.
 *
 * Exact JSON for each rule of the convention (XMLJSON.md), round trips
 * XML -> JSON -> XML -> JSON that must give equal JSON and a fixed point in
 * XML, and every refusal of xmljson_to_xml with its JSON path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <libxml/parser.h>

#include "xml_safe.h"
#include "xmljson.h"

static xmlDocPtr parse(const char *xml)
{
    char err[512];
    xmlDocPtr doc = xml_parse_safe(xml, strlen(xml), NULL, err, sizeof(err));
    if (!doc)
        fail_msg("parse failed: %s\n%s", err, xml);
    return doc;
}

/* Compact JSON text of the root element (caller frees). */
static char *json_of(const char *xml)
{
    xmlDocPtr doc = parse(xml);
    json_t *j = xmljson_from_node(xmlDocGetRootElement(doc));
    assert_non_null(j);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    xmlFreeDoc(doc);
    return text;
}

static void expect_json(const char *xml, const char *want)
{
    char *got = json_of(xml);
    if (strcmp(got, want) != 0)
        fail_msg("xml: %s\nwant: %s\ngot:  %s", xml, want, got);
    free(got);
}

/* JSON text -> XML text, or "ERR <message>" (caller frees). */
static char *xml_of(const char *json)
{
    json_error_t jerr;
    json_t *j = json_loads(json, JSON_DECODE_ANY, &jerr);
    if (!j)
        fail_msg("bad test JSON %s: %s", json, jerr.text);
    char err[512] = "", *out;
    size_t len = 0;
    char *xml = xmljson_to_xml(j, &len, err, sizeof(err));
    json_decref(j);
    if (!xml) {
        out = malloc(strlen(err) + 5);
        sprintf(out, "ERR %s", err);
        return out;
    }
    assert_int_equal(len, strlen(xml));
    return xml;
}

static void expect_xml(const char *json, const char *want)
{
    char *got = xml_of(json);
    if (strcmp(got, want) != 0)
        fail_msg("json: %s\nwant: %s\ngot:  %s", json, want, got);
    free(got);
}

/* XML -> JSON -> XML -> JSON: equal JSON; and the XML is then a fixed point. */
static void round_trip(const char *xml)
{
    char *j1 = json_of(xml);
    char *x1 = xml_of(j1);
    if (!strncmp(x1, "ERR ", 4))
        fail_msg("to_xml failed for %s: %s", j1, x1);
    char *j2 = json_of(x1);
    if (strcmp(j1, j2) != 0)
        fail_msg("round trip changed the JSON\nxml: %s\nj1: %s\nx1: %s\nj2: %s", xml, j1, x1, j2);
    char *x2 = xml_of(j2);
    assert_string_equal(x1, x2);
    free(j1);
    free(x1);
    free(j2);
    free(x2);
}

static void test_text_only_and_empty(void **state)
{
    expect_json("<a>hello</a>", "{\"a\":\"hello\"}");
    expect_json("<a/>", "{\"a\":\"\"}");
    expect_json("<a></a>", "{\"a\":\"\"}");
    /* text of a text-only element is kept verbatim, whitespace included */
    expect_json("<a>  two  words \n</a>", "{\"a\":\"  two  words \\n\"}");
    expect_json("<a> </a>", "{\"a\":\" \"}");
}

static void test_attributes(void **state)
{
    expect_json("<a id=\"7\" note='x &amp; y'/>", "{\"a\":{\"@id\":\"7\",\"@note\":\"x & y\"}}");
    expect_json("<a id=\"7\">text</a>", "{\"a\":{\"@id\":\"7\",\"#text\":\"text\"}}");
    expect_json("<a id=\"7\">  </a>", "{\"a\":{\"@id\":\"7\",\"#text\":\"  \"}}");
    expect_json("<a xml:lang=\"en\">hi</a>", "{\"a\":{\"@xml:lang\":\"en\",\"#text\":\"hi\"}}");
}

static void test_children_and_arrays(void **state)
{
    expect_json("<order><id>1</id><line><sku>A</sku></line><line><sku>B</sku></line>"
                "<line/></order>",
                "{\"order\":{\"id\":\"1\",\"line\":[{\"sku\":\"A\"},{\"sku\":\"B\"},\"\"]}}");
    /* one occurrence is not an array; non-adjacent repeats still gather */
    expect_json("<a><b>1</b><c>2</c><b>3</b></a>", "{\"a\":{\"b\":[\"1\",\"3\"],\"c\":\"2\"}}");
}

static void test_whitespace_and_mixed(void **state)
{
    /* indentation between elements is not data */
    expect_json("<a>\n  <b>1</b>\n  <c>\n    <d>x</d>\n  </c>\n</a>",
                "{\"a\":{\"b\":\"1\",\"c\":{\"d\":\"x\"}}}");
    /* mixed content: the text pieces are joined into #text */
    expect_json("<p>Hello <b>big</b> world</p>",
                "{\"p\":{\"#text\":\"Hello  world\",\"b\":\"big\"}}");
    /* CDATA is text; comments and processing instructions are dropped */
    expect_json("<a><![CDATA[<x> & y]]><!-- c --><?pi x?></a>", "{\"a\":\"<x> & y\"}");
}

static void test_namespaces(void **state)
{
    expect_json("<ns0:Op xmlns:ns0=\"urn:x\"><ns0:id>1</ns0:id></ns0:Op>",
                "{\"ns0:Op\":{\"@xmlns:ns0\":\"urn:x\",\"ns0:id\":\"1\"}}");
    expect_json("<Op xmlns=\"urn:d\"><id>1</id><x:id xmlns:x=\"urn:x\" x:t=\"v\">2</x:id>"
                "<e xmlns=\"\">3</e></Op>",
                "{\"Op\":{\"@xmlns\":\"urn:d\",\"id\":\"1\",\"x:id\":{\"@xmlns:x\":\"urn:x\","
                "\"@x:t\":\"v\",\"#text\":\"2\"},\"e\":{\"@xmlns\":\"\",\"#text\":\"3\"}}}");
}

static void test_unicode_and_escaping(void **state)
{
    expect_json("<a t=\"&lt;&gt;&amp;&quot;&apos;\">&lt;&gt;&amp;\"' \xC3\xA9\xE2\x82\xAC"
                "\xF0\x9F\x98\x80 &#x263A;</a>",
                "{\"a\":{\"@t\":\"<>&\\\"'\",\"#text\":\"<>&\\\"' \xC3\xA9\xE2\x82\xAC"
                "\xF0\x9F\x98\x80 \xE2\x98\xBA\"}}");
    expect_xml("{\"a\":{\"@t\":\"<>&\\\"'\\n\\t\",\"#text\":\"<>&\\\"'\\r \xC3\xA9\"}}",
               "<a t=\"&lt;&gt;&amp;&quot;'&#10;&#9;\">&lt;&gt;&amp;\"'&#13; \xC3\xA9</a>");
}

/* The body child of a SOAP envelope stands alone: inherited namespaces come along. */
static void test_inherited_namespaces(void **state)
{
    xmlDocPtr doc =
        parse("<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" "
              "xmlns:urn=\"urn:crm\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
              "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:unused=\"urn:unused\">"
              "<soapenv:Body><urn:Op><urn:n xsi:type=\"xsd:string\">Ann</urn:n></urn:Op>"
              "</soapenv:Body></soapenv:Envelope>");
    xmlNodePtr op = xmlDocGetRootElement(doc)->children->children;
    json_t *j = xmljson_from_node(op);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_string_equal(text, "{\"urn:Op\":{\"@xmlns:urn\":\"urn:crm\",\"@xmlns:xsi\":"
                              "\"http://www.w3.org/2001/XMLSchema-instance\",\"@xmlns:xsd\":"
                              "\"http://www.w3.org/2001/XMLSchema\",\"urn:n\":{\"@xsi:type\":"
                              "\"xsd:string\",\"#text\":\"Ann\"}}}");
    free(text);
    size_t len;
    char *xml = xml_node_serialize(op, &len);
    assert_string_equal(xml, "<urn:Op xmlns:urn=\"urn:crm\" "
                             "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
                             "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><urn:n "
                             "xsi:type=\"xsd:string\">Ann</urn:n></urn:Op>");
    assert_int_equal(len, strlen(xml));
    char err[256];
    char *back = xmljson_to_xml(j, NULL, err, sizeof(err));
    assert_string_equal(back, xml);
    free(back);
    free(xml);
    json_decref(j);
    assert_null(xml_node_serialize((xmlNodePtr)doc, NULL));
    assert_null(xmljson_from_node(NULL));
    xmlFreeDoc(doc);
}

static void test_round_trips(void **state)
{
    static const char *const docs[] = {
        "<a>x</a>",
        "<a/>",
        "<a id=\"1\" b=\"two words\"/>",
        "<a id=\"1\">text</a>",
        "<a id=\"1\">lead<b>x</b>tail</a>",
        "<order><line n=\"1\">A</line><line n=\"2\">B</line><line/><total>10.50</total></order>",
        "<a><b><c><d><e>deep</e></d></c></b></a>",
        "<ns0:Op xmlns:ns0=\"urn:x\" xmlns:t=\"urn:t\"><ns0:a t:k=\"v\">1</ns0:a><t:b/></ns0:Op>",
        "<Op xmlns=\"urn:d\"><a>1</a><e xmlns=\"\"><f>2</f></e></Op>",
        "<p:a xmlns:p=\"urn:1\"><p:b xmlns:p=\"urn:2\">rebound</p:b></p:a>",
        "<a xml:lang=\"fr\">\xC3\xA9t\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xE4\xB8\xAD</a>",
        "<a q=\"&lt;&amp;&gt;&quot;'\">&lt;tag&gt; &amp; \"quotes\" 'single' &#13;&#9;</a>",
        "<a>  spaced  </a>",
        "<a><b>1</b><c>2</c><b>3</b><c>4</c></a>",
        "<a><![CDATA[1 < 2]]></a>",
        /* names valid by XML 1.0 5th edition (U+0149 was not a letter in the 4th) */
        "<r xmln\xC5\x89\xC5\xBA"
        "i=\"1\" \xC5\x89"
        "a=\"2\"><\xC5\x89"
        "b>x</\xC5\x89"
        "b>"
        "<\xE4\xB8\xAD/></r>",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        round_trip(docs[i]);
}

static void test_to_xml_shapes(void **state)
{
    expect_xml("{\"a\":\"x\"}", "<a>x</a>");
    expect_xml("{\"a\":\"\"}", "<a/>");
    expect_xml("{\"a\":{}}", "<a/>");
    expect_xml("{\"a\":null}", "<a/>");
    expect_xml("{\"a\":{\"b\":[\"1\",{\"@k\":\"v\"},null],\"#text\":\"t\"}}",
               "<a>t<b>1</b><b k=\"v\"/><b/></a>");
    expect_xml("{\"a\":{\"b\":[]}}", "<a/>");
    /* JSON types become their text; reals use the shortest exact form */
    expect_xml("{\"a\":{\"@n\":42,\"r\":0.1,\"big\":12345678901234567,\"t\":true,\"f\":false}}",
               "<a n=\"42\"><r>0.1</r><big>12345678901234567</big><t>true</t><f>false</f></a>");
    expect_xml("{\"a\":{\"@skip\":null}}", "<a/>");
    expect_xml("{\"p:a\":{\"@xmlns:p\":\"urn:p\",\"@xmlns:xml\":"
               "\"http://www.w3.org/XML/1998/namespace\",\"@p:k\":\"1\",\"@xml:lang\":\"en\"}}",
               "<p:a xmlns:p=\"urn:p\" p:k=\"1\" xml:lang=\"en\"/>");
    expect_xml("{\"a\":{\"@xmlns\":\"urn:d\",\"b\":{\"@xmlns\":\"\",\"c\":\"1\"}}}",
               "<a xmlns=\"urn:d\"><b xmlns=\"\"><c>1</c></b></a>");
}

static void test_to_xml_refusals(void **state)
{
    expect_xml("[1]", "ERR /: expected an object with exactly one key, the root element, like "
                      "{\"Root\": {...}}");
    expect_xml("{\"a\":\"1\",\"b\":\"2\"}",
               "ERR /: expected an object with exactly one key, the root element, like "
               "{\"Root\": {...}}");
    expect_xml("{\"@a\":\"1\"}", "ERR /@a: the root must be an element, not an attribute or text");
    expect_xml("{\"a\":[\"1\"]}", "ERR /a: the root must be one element, not an array");
    expect_xml("{\"1a\":\"x\"}", "ERR /1a: \"1a\" is not a valid XML element name");
    expect_xml("{\"a\":{\"b c\":\"x\"}}", "ERR /a/b c: \"b c\" is not a valid XML element name");
    expect_xml("{\"a\":{\"@\":\"x\"}}", "ERR /a/@: \"\" is not a valid XML attribute name");
    expect_xml("{\"a\":{\"b\xC2\xA0"
               "c\":\"x\"}}", /* no-break space */
               "ERR /a/b\xC2\xA0"
               "c: \"b\xC2\xA0"
               "c\" is not a valid XML element name");
    expect_xml("{\"a\":{\"p:\":\"x\"}}", "ERR /a/p:: \"p:\" is not a valid XML element name");
    expect_xml("{\"a\":{\"p:q:r\":\"x\"}}",
               "ERR /a/p:q:r: \"p:q:r\" is not a valid XML element name");
    expect_xml("{\"a\":{\"b\":[\"1\",[\"2\"]]}}",
               "ERR /a/b[2]: arrays cannot nest: an item must be a string or an object");
    expect_xml("{\"p:a\":\"x\"}",
               "ERR /p:a: prefix \"p\" of element \"p:a\" is not declared (add \"@xmlns:p\")");
    expect_xml("{\"a\":{\"@q:k\":\"x\"}}",
               "ERR /a/@q:k: prefix \"q\" is not declared (add \"@xmlns:q\")");
    expect_xml("{\"a\":{\"#comment\":\"x\"}}",
               "ERR /a: unknown key \"#comment\" (\"#text\" is the only # key)");
    expect_xml("{\"a\":{\"@k\":{\"x\":\"1\"}}}", "ERR /a/@k: expected a string, got an object");
    expect_xml("{\"a\":{\"#text\":[\"1\"]}}", "ERR /a/#text: expected a string, got an array");
    expect_xml("{\"a\":{\"b\":\"x\\u0001y\"}}", "ERR /a/b: character U+0001 cannot appear in XML");
    expect_xml("{\"a\":{\"@xmlns:p\":\"\"}}",
               "ERR /a/@xmlns:p: prefix \"p\" cannot be bound to an empty URI in XML 1.0");
    expect_xml("{\"a\":{\"@xmlns:xml\":\"urn:other\"}}",
               "ERR /a/@xmlns:xml: the prefix \"xml\" is bound to "
               "http://www.w3.org/XML/1998/namespace only");
    expect_xml("{\"xmlns:a\":\"x\"}", "ERR /xmlns:a: the prefix \"xmlns\" is reserved");
    expect_xml("{\"a\":{\"@xmlns\":1}}",
               "ERR /a/@xmlns: a namespace declaration must be a string (the namespace URI)");
    expect_xml("{\"a\":{\"p:k\":\"1\",\"@xmlns:p\":\"u\",\"@p:x\":\"1\",\"@xmlns:q\":\"u\","
               "\"@q:x\":\"2\"}}",
               "ERR /a/@q:x: attribute given twice (same namespace and name)");
}

/* jansson's parser refuses NUL in keys, but a program can build one. */
static void test_to_xml_nul_in_key(void **state)
{
    char err[256];
    json_t *root = json_object(), *inner = json_object();
    json_object_setn_new(root, "a\0b", 3, json_string("x"));
    assert_null(xmljson_to_xml(root, NULL, err, sizeof(err)));
    assert_string_equal(err, "/: a key contains U+0000, which no XML name can");
    json_object_setn_new(inner, "b\0c", 3, json_string("x"));
    json_t *wrapped = json_pack("{so}", "a", inner);
    assert_null(xmljson_to_xml(wrapped, NULL, err, sizeof(err)));
    assert_string_equal(err, "/a: a key contains U+0000, which no XML name can");
    json_decref(root);
    json_decref(wrapped);
}

static void test_to_xml_depth(void **state)
{
    json_t *leaf = json_string("x");
    for (int i = 0; i <= XMLJSON_MAX_DEPTH; i++) /* 257 nested elements */
        leaf = json_pack("{so}", "e", leaf);
    char err[1024];
    assert_null(xmljson_to_xml(leaf, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, ": elements nested deeper than 256"));
    json_t *inner = json_object_get(leaf, "e"); /* one level less: accepted */
    char *xml = xmljson_to_xml(inner, NULL, err, sizeof(err));
    assert_non_null(xml);
    free(xml);
    json_decref(leaf);
}

/* {"R": {<n keys "<fmt>" % i: value>}} */
static json_t *wide(const char *fmt, int n, const char *value)
{
    json_t *o = json_object();
    char key[64];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), fmt, i);
        json_object_set_new(o, key, json_string(value));
    }
    return json_pack("{so}", "R", o);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xmljson_to_xml(j) (consumed) refused with exactly want, in well under 2 s of
 * CPU; NULL want: accepted. */
static void expect_to_xml(json_t *j, const char *want)
{
    char err[512] = "";
    double t0 = cpu_seconds();
    char *xml = xmljson_to_xml(j, NULL, err, sizeof(err));
    double took = cpu_seconds() - t0;
    json_decref(j);
    if (want && xml)
        fail_msg("accepted, want: %s", want);
    if (!want && !xml)
        fail_msg("refused: %s", err);
    if (want && strcmp(err, want) != 0)
        fail_msg("want: %s\ngot:  %s", want, err);
    if (took > 2.0)
        fail_msg("took %.3f s of CPU", took);
    free(xml);
}

/* The XML limits of xml_safe apply while the tree is built: past them the
 * text would be refused by the parser anyway, and building it was quadratic
 * (each attribute checked against, and appended after, all the others: 20 000
 * attributes cost 5 s, 60 000 namespace declarations 7.7 s). */
static void test_to_xml_element_limits(void **state)
{
    expect_to_xml(wide("@a%d", 256, "v"), NULL);
    expect_to_xml(wide("@a%d", 257, "v"), "/R: more than 256 attributes on one element, the limit");
    expect_to_xml(wide("@a%d", 20000, "v"),
                  "/R: more than 256 attributes on one element, the limit");
    expect_to_xml(wide("@xmlns:p%d", 128, "urn:u"), NULL);
    expect_to_xml(wide("@xmlns:p%d", 129, "urn:u"),
                  "/R: more than 128 namespace declarations on one element, the limit");
    expect_to_xml(wide("@xmlns:p%d", 60000, "urn:u"),
                  "/R: more than 128 namespace declarations on one element, the limit");

    /* in scope: 64 on R, 64 on its child c, one more on c's child g */
    json_t *g = wide("@xmlns:g%d", 1, "urn:g");
    json_t *c = wide("@xmlns:c%d", 64, "urn:c");
    json_object_set(json_object_get(c, "R"), "g", json_object_get(g, "R"));
    json_t *r = wide("@xmlns:r%d", 64, "urn:r");
    json_object_set(json_object_get(r, "R"), "c", json_object_get(c, "R"));
    json_decref(g);
    json_decref(c);
    expect_to_xml(json_deep_copy(r), "/R/c/g: more than 128 namespace declarations in scope (on "
                                     "the element and its ancestors), the limit");
    json_object_del(json_object_get(json_object_get(json_object_get(r, "R"), "c"), "g"),
                    "@xmlns:g0");
    expect_to_xml(r, NULL); /* 128 in scope */
}

/* JSON text in one call: the three outcomes a caller must tell apart. */
static void test_text_to_xml(void **state)
{
    char err[256];
    size_t len = 0;
    bool parsed = false;
    char *xml =
        xmljson_text_to_xml("{\"a\": {\"@id\": \"7\"}}", 19, &len, &parsed, err, sizeof(err));
    assert_non_null(xml);
    assert_true(parsed);
    assert_string_equal(xml, "<a id=\"7\"/>");
    assert_int_equal(len, strlen(xml));
    free(xml);
    assert_null(xmljson_text_to_xml("{\"a\": ", 7, &len, &parsed, err, sizeof(err)));
    assert_false(parsed);
    assert_non_null(strstr(err, "at line 1"));
    assert_null(xmljson_text_to_xml("[1, 2]", 6, &len, &parsed, err, sizeof(err)));
    assert_true(parsed); /* JSON, but not one root element */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_only_and_empty),
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_children_and_arrays),
        cmocka_unit_test(test_whitespace_and_mixed),
        cmocka_unit_test(test_namespaces),
        cmocka_unit_test(test_unicode_and_escaping),
        cmocka_unit_test(test_inherited_namespaces),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_to_xml_shapes),
        cmocka_unit_test(test_to_xml_refusals),
        cmocka_unit_test(test_to_xml_nul_in_key),
        cmocka_unit_test(test_to_xml_depth),
        cmocka_unit_test(test_to_xml_element_limits),
        cmocka_unit_test(test_text_to_xml),
    };
    xmlInitParser();
    json_object_seed(1);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
