package conformance.oracle;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JavaType;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.type.TypeFactory;
import com.fasterxml.jackson.datatype.guava.GuavaModule;
import com.fasterxml.jackson.datatype.jdk8.Jdk8Module;
import com.fasterxml.jackson.datatype.jsr310.JavaTimeModule;
import com.fasterxml.jackson.module.paramnames.ParameterNamesModule;
import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableSet;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Parameter;
import java.lang.reflect.RecordComponent;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;

/**
 * Real Jackson, configured as Stairway's {@code StairwayMapper}, answering over stdin/stdout.
 *
 * <p>One JSON request per line in, one JSON response per line out (same order, same "id").
 * The protocol and the Java-value description language are documented in ../README.md. This is
 * our own test program; it contains no Stairway code, only the mapper configuration and the
 * FlightMap read/write rules that reference/stairway-engine.md §5 states.
 */
public final class Oracle {
  /** The protocol's own mapper: plain Jackson, no default typing. */
  private static final ObjectMapper PROTOCOL = new ObjectMapper();

  private static final JsonFactory RAW = new JsonFactory();

  /** Stairway ≤0.0.61: no GuavaModule. */
  private final ObjectMapper legacy = stairwayMapper(false);

  /** Stairway ≥0.0.62: GuavaModule added. */
  private final ObjectMapper modern = stairwayMapper(true);

  /** The same modules without default typing, keys sorted: a value's content, for comparing. */
  private final ObjectMapper canonical =
      new ObjectMapper()
          .registerModule(new ParameterNamesModule())
          .registerModule(new Jdk8Module())
          .registerModule(new JavaTimeModule())
          .registerModule(new GuavaModule())
          .configure(com.fasterxml.jackson.databind.SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS, true);

  /**
   * The mapper StairwayMapper.getObjectMapper() builds (§5.1), module for module, except
   * JsonNullableModule (org.openapitools:jackson-databind-nullable), which is not in the local
   * Maven repository. It only adds (de)serializers for JsonNullable<T>; default typing of every
   * other value is decided by enableDefaultTyping below and does not depend on it.
   */
  @SuppressWarnings("deprecation") // enableDefaultTyping is what Stairway calls
  static ObjectMapper stairwayMapper(boolean guava) {
    ObjectMapper mapper =
        new ObjectMapper()
            .registerModule(new ParameterNamesModule())
            .registerModule(new Jdk8Module())
            .registerModule(new JavaTimeModule());
    if (guava) {
      mapper.registerModule(new GuavaModule());
    }
    return mapper
        .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false)
        .enableDefaultTyping(ObjectMapper.DefaultTyping.NON_FINAL);
  }

  public static void main(String[] args) throws Exception {
    Oracle oracle = new Oracle();
    BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8), 1 << 16);
    PrintStream out =
        new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
    ObjectNode hello = PROTOCOL.createObjectNode();
    hello.put("ready", true);
    hello.put("jackson", com.fasterxml.jackson.databind.cfg.PackageVersion.VERSION.toString());
    hello.put("java", System.getProperty("java.version"));
    out.println(PROTOCOL.writeValueAsString(hello));
    out.flush();
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) {
        continue;
      }
      JsonNode request = PROTOCOL.readTree(line);
      ObjectNode response;
      try {
        response = oracle.handle(request);
      } catch (Exception | StackOverflowError e) {
        response = PROTOCOL.createObjectNode();
        response.put("error", e.getClass().getName() + ": " + e.getMessage());
      }
      response.set("id", request.get("id"));
      out.println(PROTOCOL.writeValueAsString(response));
      if (!in.ready()) {
        out.flush(); // end of a batch
      }
    }
    out.flush();
  }

  ObjectNode handle(JsonNode request) throws Exception {
    String op = request.path("op").asText();
    ObjectNode out = PROTOCOL.createObjectNode();
    switch (op) {
      case "write":
        out.put("text", mapper(request).writeValueAsString(build(request.get("value"))));
        return out;
      case "write_map":
        out.put("text", mapper(request).writeValueAsString(buildHashMap(request.get("entries"))));
        return out;
      case "runtime_class":
        Object value = build(request.get("value"));
        out.put("class", value == null ? null : value.getClass().getName());
        out.put("final", value != null && java.lang.reflect.Modifier.isFinal(value.getClass().getModifiers()));
        return out;
      case "class_info":
        {
          String name = request.get("name").asText();
          try {
            Class<?> c = Class.forName(name);
            out.put("exists", true);
            out.put("final", java.lang.reflect.Modifier.isFinal(c.getModifiers()));
            out.put("enum", c.isEnum());
            out.put("record", c.isRecord());
          } catch (ClassNotFoundException e) {
            out.put("exists", false);
          }
          return out;
        }
      case "reread":
        {
          // read `text` as `reader` does for `type`; is it the Java value `value` describes?
          String reader = request.path("reader").asText();
          ObjectNode verdict = get(reader, request.get("text").asText(), request.get("type"));
          if (verdict.get("ok").asBoolean()) {
            Object read =
                reader.equals("legacy")
                    ? legacy.readValue(request.get("text").asText(), Object.class)
                    : modern.readValue(request.get("text").asText(), javaType(request.get("type")));
            if (read instanceof Optional) {
              read = ((Optional<?>) read).orElse(null);
            }
            Object original = build(request.get("value"));
            JsonNode before = request.get("original_text");
            if (before != null) {
              // the stored value as the code asks for it, when the typed reader can read it so
              try {
                original = modern.readValue(before.asText(), javaType(request.get("type")));
              } catch (Exception e) {
                // keep the Java value that was stored
              }
            }
            if (original instanceof Optional) {
              original = ((Optional<?>) original).orElse(null);
            }
            verdict.put("original", canonical.writeValueAsString(original));
            try {
              verdict.put("read", canonical.writeValueAsString(read));
            } catch (Exception e) {
              verdict.put("read", "\"unusable: " + e.getClass().getName() + "\"");
            }
          }
          return verdict;
        }
      case "get":
        return get(request.path("reader").asText(), request.get("text").asText(), request.get("type"));
      case "map":
        return readMap(request);
      default:
        throw new IllegalArgumentException("unknown op " + op);
    }
  }

  private ObjectMapper mapper(JsonNode request) {
    String gen = request.path("gen").asText("modern");
    return gen.equals("legacy") ? legacy : modern;
  }

  // --- reading ----------------------------------------------------------------------------

  /**
   * FlightMap.get(key, type) on one stored per-key text. legacy (≤0.0.60): the map is rebuilt
   * with readValue(text, Object.class) ("rebuild"), then get checks type.isInstance ("get");
   * typed (≥0.0.62): get is readValue(text, type) ("get"). A container asked for by class has
   * its elements cast where the service uses them ("use").
   */
  ObjectNode get(String reader, String text, JsonNode type) {
    Object value;
    if (reader.equals("legacy")) {
      try {
        value = legacy.readValue(text, Object.class);
      } catch (Exception e) {
        return failure("rebuild", e);
      }
      return instanceVerdict(value, type);
    }
    try {
      value = modern.readValue(text, javaType(type));
    } catch (Exception e) {
      return failure("get", e);
    }
    if (!type.path("ref").asBoolean(false)) {
      String bad = elementsMismatch(value, type.get("of"), "");
      if (bad != null) {
        return failure("use", "java.lang.ClassCastException", bad);
      }
    }
    return success(value);
  }

  private ObjectNode instanceVerdict(Object value, JsonNode type) {
    if (value == null) {
      return success(null);
    }
    Class<?> cls;
    try {
      cls = Class.forName(type.get("raw").asText());
    } catch (ClassNotFoundException e) {
      return failure("get", e);
    }
    if (!cls.isInstance(value)) {
      return failure(
          "get",
          "java.lang.ClassCastException",
          "Found value is not an instance of type " + cls.getName() + " (it is "
              + value.getClass().getName() + ")");
    }
    String bad = elementsMismatch(value, type.get("of"), "");
    if (bad != null) {
      return failure("use", "java.lang.ClassCastException", bad);
    }
    return success(value);
  }

  /**
   * Where a container's element (recursively) is not an instance of the element type; an
   * exception while the service would iterate it (a broken object Jackson made) counts too.
   */
  private String elementsMismatch(Object value, JsonNode of, String path) {
    try {
      return elementsMismatchOrThrow(value, of, path);
    } catch (RuntimeException e) {
      return path + "iterating it throws " + e.getClass().getName();
    }
  }

  private String elementsMismatchOrThrow(Object value, JsonNode of, String path) {
    if (of == null || of.isNull() || value == null) {
      return null;
    }
    Iterable<?> items;
    if (value instanceof Map) {
      items = ((Map<?, ?>) value).values();
    } else if (value instanceof Collection) {
      items = (Collection<?>) value;
    } else {
      return null;
    }
    Class<?> cls;
    try {
      cls = Class.forName(of.get("raw").asText());
    } catch (ClassNotFoundException e) {
      return path + " element type " + of.get("raw").asText() + " not found";
    }
    int i = 0;
    for (Object item : items) {
      if (item != null) {
        if (!cls.isInstance(item)) {
          return path + "element " + i + " is " + item.getClass().getName() + ", not "
              + cls.getName();
        }
        String inner = elementsMismatch(item, of.get("of"), path + "element " + i + " / ");
        if (inner != null) {
          return inner;
        }
      }
      i++;
    }
    return null;
  }

  /** A requested type: {"raw": class, "of": element type, "ref": TypeReference?}. */
  private JavaType javaType(JsonNode type) throws ClassNotFoundException {
    TypeFactory tf = modern.getTypeFactory();
    Class<?> raw = Class.forName(type.get("raw").asText());
    JsonNode of = type.get("of");
    if (!type.path("ref").asBoolean(false) || of == null || of.isNull()) {
      return tf.constructType(raw);
    }
    JavaType element = javaType(of);
    if (Map.class.isAssignableFrom(raw)) {
      return tf.constructMapType(
          raw.asSubclass(Map.class), tf.constructType(String.class), element);
    }
    return tf.constructCollectionType(raw.asSubclass(Collection.class), element);
  }

  /**
   * How a reader generation rebuilds an input or working map and then gets keys from it.
   *
   * <p>input: flightinput rows. legacy: each row readValue(Object.class) (any failure fails the
   * rebuild); typed: raw texts. working (§5.5): legacy (≤0.0.60): working_parameters whenever it
   * is non-null, read as Map&lt;String,Object&gt;; nothing otherwise (rows are never read).
   * typed (≥0.0.61): flightworking rows; only when there are none, working_parameters through
   * FlightMapUtils.fromJson (read as Map&lt;String,Object&gt;, every value written out again).
   */
  ObjectNode readMap(JsonNode request) throws Exception {
    String reader = request.get("reader").asText();
    String source = request.get("source").asText();
    JsonNode rows = request.path("rows");
    JsonNode json = request.get("json");
    JsonNode gets = request.path("gets");
    boolean legacyReader = reader.equals("legacy");
    ObjectMapper mapper = legacyReader ? legacy : modern;
    ObjectNode out = PROTOCOL.createObjectNode();
    ObjectNode failures = out.putObject("rebuild_failures");
    ObjectNode verdicts = out.putObject("gets");

    // per key: what a legacy map holds (objects) or a typed map holds (stored texts)
    Map<String, String> texts = new LinkedHashMap<>();
    Map<String, Object> objects = new LinkedHashMap<>();
    String from;
    boolean haveJson = json != null && !json.isNull();
    if (source.equals("input") || (!legacyReader && (rows.size() > 0 || !haveJson))) {
      from = rows.size() > 0 ? "rows" : "none";
      for (Iterator<Map.Entry<String, JsonNode>> it = rows.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> e = it.next();
        if (!legacyReader) {
          texts.put(e.getKey(), e.getValue().asText());
          continue;
        }
        try {
          objects.put(e.getKey(), legacy.readValue(e.getValue().asText(), Object.class));
        } catch (Exception ex) {
          failures.set(e.getKey(), failure("rebuild", ex));
        }
      }
    } else if (!haveJson) {
      from = "none"; // a <=0.0.60 reader with working_parameters NULL: the default empty map
    } else {
      from = "working_parameters";
      String whole = json.asText();
      Exception wholeFailure = null;
      try {
        mapper.readValue(whole, new TypeReference<Map<String, Object>>() {});
      } catch (Exception ex) {
        wholeFailure = ex;
      }
      out.put("whole_map_ok", wholeFailure == null);
      // value by value, as the whole-map read does them (it stops at the first failure)
      Map<String, String> parts = splitWholeMap(whole);
      if (parts == null) {
        failures.set(
            "<working_parameters>",
            wholeFailure != null
                ? failure("rebuild", wholeFailure)
                : failure("rebuild", "java.lang.IllegalStateException", "not a whole map"));
      } else {
        for (Map.Entry<String, String> e : parts.entrySet()) {
          try {
            Object value = mapper.readValue(e.getValue(), Object.class);
            if (legacyReader) {
              objects.put(e.getKey(), value);
            } else {
              texts.put(e.getKey(), modern.writeValueAsString(value)); // FlightMapUtils.fromJson
            }
          } catch (Exception ex) {
            failures.set(e.getKey(), failure("rebuild", ex));
          }
        }
        if (wholeFailure != null && failures.size() == 0) {
          failures.set("<working_parameters>", failure("rebuild", wholeFailure));
        }
        if (wholeFailure == null && failures.size() > 0) {
          throw new IllegalStateException("whole map reads but a value of it does not");
        }
      }
    }
    out.put("from", from);
    if (!legacyReader) {
      ObjectNode shown = out.putObject("texts");
      texts.forEach(shown::put);
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = gets.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      String key = e.getKey();
      if (failures.has(key)) {
        continue; // the value never made it into the map
      }
      if (legacyReader) {
        verdicts.set(key, instanceVerdict(objects.get(key), e.getValue()));
      } else if (!texts.containsKey(key)) {
        verdicts.set(key, success(null));
      } else {
        verdicts.set(key, get("typed", texts.get(key), e.getValue()));
      }
    }
    return out;
  }

  /** The raw text of each value of a whole-map ["java.util.HashMap",{...}], or null. */
  private static Map<String, String> splitWholeMap(String whole) {
    Map<String, String> parts = new LinkedHashMap<>();
    try (JsonParser p = RAW.createParser(whole)) {
      if (p.nextToken() != JsonToken.START_ARRAY || p.nextToken() != JsonToken.VALUE_STRING) {
        return null;
      }
      if (p.nextToken() != JsonToken.START_OBJECT) {
        return null;
      }
      while (p.nextToken() == JsonToken.FIELD_NAME) {
        String key = p.currentName();
        p.nextToken();
        int start = (int) p.currentTokenLocation().getCharOffset();
        p.skipChildren();
        p.finishToken(); // a string is parsed lazily: consume it before taking its end
        int end = (int) p.currentLocation().getCharOffset();
        parts.put(key, whole.substring(start, end));
      }
      return parts;
    } catch (Exception e) {
      return null;
    }
  }

  private static ObjectNode success(Object value) {
    ObjectNode out = PROTOCOL.createObjectNode();
    out.put("ok", true);
    out.put("cls", value == null ? null : value.getClass().getName());
    return out;
  }

  private static ObjectNode failure(String stage, Exception e) {
    String msg = e.getMessage() == null ? "" : e.getMessage();
    return failure(stage, e.getClass().getName(), msg.split("\n", 2)[0]);
  }

  private static ObjectNode failure(String stage, String exception, String message) {
    ObjectNode out = PROTOCOL.createObjectNode();
    out.put("ok", false);
    out.put("stage", stage);
    out.put("exc", exception);
    out.put("msg", message);
    return out;
  }

  // --- building Java values from descriptions -----------------------------------------------

  private static HashMap<String, Object> buildHashMap(JsonNode entries) throws Exception {
    HashMap<String, Object> map = new HashMap<>();
    for (JsonNode entry : entries) {
      map.put(entry.get(0).asText(), build(entry.get(1)));
    }
    return map;
  }

  /** A Java value from its description (see ../README.md). */
  static Object build(JsonNode d) throws Exception {
    if (d == null || d.isNull()) {
      return null;
    }
    String t = d.get("t").asText();
    JsonNode v = d.get("v");
    switch (t) {
      case "String":
        return v.textValue();
      case "Integer":
        return v.bigIntegerValue().intValueExact();
      case "Long":
        return v.bigIntegerValue().longValueExact();
      case "Short":
        return v.bigIntegerValue().shortValueExact();
      case "Byte":
        return v.bigIntegerValue().byteValueExact();
      case "Double":
        return Double.parseDouble(v.textValue());
      case "Float":
        return Float.parseFloat(v.textValue());
      case "Boolean":
        return v.booleanValue();
      case "BigDecimal":
        return new BigDecimal(v.textValue());
      case "BigInteger":
        return new BigInteger(v.textValue());
      case "UUID":
        return UUID.fromString(v.textValue());
      case "Instant":
        return Instant.parse(v.textValue());
      case "enum":
        return enumConstant(d.get("class").asText(), v.textValue());
      case "pojo":
        return pojo(d.get("class").asText(), v);
      case "Optional":
        return Optional.ofNullable(build(v));
      case "array":
        return array(d.get("of").asText(), v);
      default:
        return collection(t, v);
    }
  }

  @SuppressWarnings({"unchecked", "rawtypes"})
  private static Object enumConstant(String cls, String name) throws Exception {
    return Enum.valueOf((Class) Class.forName(cls), name);
  }

  private static List<Object> items(JsonNode v) throws Exception {
    List<Object> out = new ArrayList<>();
    for (JsonNode item : v) {
      out.add(build(item));
    }
    return out;
  }

  private static LinkedHashMap<String, Object> entries(JsonNode v) throws Exception {
    LinkedHashMap<String, Object> out = new LinkedHashMap<>();
    for (JsonNode entry : v) {
      out.put(entry.get(0).asText(), build(entry.get(1)));
    }
    return out;
  }

  private static Object collection(String t, JsonNode v) throws Exception {
    switch (t) {
      case "ArrayList":
        return new ArrayList<>(items(v));
      case "LinkedList":
        return new LinkedList<>(items(v));
      case "Arrays.asList":
        return Arrays.asList(items(v).toArray());
      case "List.of":
        return List.of(items(v).toArray());
      case "Collections.emptyList":
        return Collections.emptyList();
      case "Collections.singletonList":
        return Collections.singletonList(build(v.get(0)));
      case "Collections.unmodifiableList":
        return Collections.unmodifiableList(new ArrayList<>(items(v)));
      case "ImmutableList":
        return ImmutableList.copyOf(items(v));
      case "HashSet":
        return new HashSet<>(items(v));
      case "LinkedHashSet":
        return new LinkedHashSet<>(items(v));
      case "TreeSet":
        return new TreeSet<>(items(v));
      case "Set.of":
        return Set.of(items(v).toArray());
      case "ImmutableSet":
        return ImmutableSet.copyOf(items(v));
      case "HashMap":
        {
          HashMap<String, Object> map = new HashMap<>();
          for (JsonNode entry : v) {
            map.put(entry.get(0).asText(), build(entry.get(1)));
          }
          return map;
        }
      case "LinkedHashMap":
        return entries(v);
      case "TreeMap":
        return new TreeMap<>(entries(v));
      case "Map.of":
        return Map.copyOf(entries(v));
      case "Collections.emptyMap":
        return Collections.emptyMap();
      case "ImmutableMap":
        return ImmutableMap.copyOf(entries(v));
      default:
        throw new IllegalArgumentException("unknown value kind " + t);
    }
  }

  private static Object array(String of, JsonNode v) throws Exception {
    Class<?> component;
    switch (of) {
      case "int":
        component = int.class;
        break;
      case "long":
        component = long.class;
        break;
      case "double":
        component = double.class;
        break;
      case "boolean":
        component = boolean.class;
        break;
      default:
        component = Class.forName(of);
    }
    Object array = Array.newInstance(component, v.size());
    int i = 0;
    for (JsonNode item : v) {
      Array.set(array, i++, build(item));
    }
    return array;
  }

  /** A bean (no-argument constructor + fields), a record, or a class with one all-args creator. */
  private static Object pojo(String cls, JsonNode fields) throws Exception {
    Class<?> c = Class.forName(cls);
    Map<String, Object> values = entries(fields);
    if (c.isRecord()) {
      RecordComponent[] components = c.getRecordComponents();
      Class<?>[] types = new Class<?>[components.length];
      Object[] args = new Object[components.length];
      for (int i = 0; i < components.length; i++) {
        types[i] = components[i].getType();
        args[i] = values.get(components[i].getName());
      }
      return c.getDeclaredConstructor(types).newInstance(args);
    }
    Constructor<?> noArgs = null;
    Constructor<?> widest = null;
    for (Constructor<?> k : c.getDeclaredConstructors()) {
      if (k.getParameterCount() == 0) {
        noArgs = k;
      } else if (widest == null || k.getParameterCount() > widest.getParameterCount()) {
        widest = k;
      }
    }
    if (noArgs == null && widest != null) {
      Parameter[] params = widest.getParameters();
      Object[] args = new Object[params.length];
      for (int i = 0; i < params.length; i++) {
        args[i] = values.get(params[i].getName());
        if (args[i] == null && params[i].getType().isPrimitive()) {
          throw new IllegalArgumentException("null for primitive " + params[i].getName());
        }
      }
      return widest.newInstance(args);
    }
    if (noArgs == null) {
      throw new IllegalArgumentException(cls + " has no constructor to build it with");
    }
    Object obj = noArgs.newInstance();
    for (Map.Entry<String, Object> e : values.entrySet()) {
      Field f = field(c, e.getKey());
      f.setAccessible(true);
      f.set(obj, e.getValue());
    }
    return obj;
  }

  private static Field field(Class<?> c, String name) throws NoSuchFieldException {
    for (Class<?> k = c; k != null; k = k.getSuperclass()) {
      try {
        return k.getDeclaredField(name);
      } catch (NoSuchFieldException e) {
        // look in the superclass
      }
    }
    throw new NoSuchFieldException(c.getName() + "." + name);
  }
}
