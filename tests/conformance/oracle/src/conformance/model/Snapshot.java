package conformance.model;

import java.util.Objects;

/**
 * What Lombok's {@code @Value} generates, written by hand: a final class, private final fields,
 * one all-arguments constructor (read through ParameterNamesModule; compiled with -parameters),
 * getters, equals/hashCode/toString.
 */
public final class Snapshot {
  private final String name;
  private final long version;
  private final Owner owner;

  public Snapshot(String name, long version, Owner owner) {
    this.name = name;
    this.version = version;
    this.owner = owner;
  }

  public String getName() {
    return name;
  }

  public long getVersion() {
    return version;
  }

  public Owner getOwner() {
    return owner;
  }

  @Override
  public boolean equals(Object o) {
    if (o == this) {
      return true;
    }
    if (!(o instanceof Snapshot)) {
      return false;
    }
    Snapshot other = (Snapshot) o;
    return version == other.version
        && Objects.equals(name, other.name)
        && Objects.equals(owner, other.owner);
  }

  @Override
  public int hashCode() {
    return Objects.hash(name, version, owner);
  }

  @Override
  public String toString() {
    return "Snapshot(name=" + name + ", version=" + version + ", owner=" + owner + ")";
  }
}
