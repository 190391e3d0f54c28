package conformance.model;

import java.util.UUID;

/** A record whose components all have final types: what the sandbox's final POJOs model. */
public record Tag(String name, UUID id, Stage stage) {}
