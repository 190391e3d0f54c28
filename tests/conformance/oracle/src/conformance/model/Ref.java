package conformance.model;

import java.util.List;
import java.util.UUID;

/** A record: final, read through its canonical constructor. */
public record Ref(String name, UUID id, Stage stage, List<Integer> sizes) {}
