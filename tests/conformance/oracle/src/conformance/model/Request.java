package conformance.model;

import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.UUID;

/**
 * A non-final bean like Workspace Manager's request objects: fields of final types (written
 * plain), of non-final types (List, Owner: written with a type id) and an Optional field.
 */
public class Request {
  private String name;
  private UUID id;
  private Stage stage;
  private long count;
  private Instant created;
  private List<String> tags;
  private Owner owner;
  private Optional<String> note;

  public Request() {}

  public String getName() {
    return name;
  }

  public void setName(String name) {
    this.name = name;
  }

  public UUID getId() {
    return id;
  }

  public void setId(UUID id) {
    this.id = id;
  }

  public Stage getStage() {
    return stage;
  }

  public void setStage(Stage stage) {
    this.stage = stage;
  }

  public long getCount() {
    return count;
  }

  public void setCount(long count) {
    this.count = count;
  }

  public Instant getCreated() {
    return created;
  }

  public void setCreated(Instant created) {
    this.created = created;
  }

  public List<String> getTags() {
    return tags;
  }

  public void setTags(List<String> tags) {
    this.tags = tags;
  }

  public Owner getOwner() {
    return owner;
  }

  public void setOwner(Owner owner) {
    this.owner = owner;
  }

  public Optional<String> getNote() {
    return note;
  }

  public void setNote(Optional<String> note) {
    this.note = note;
  }
}
