package conformance.model;

/**
 * An enum with constant bodies: the enum class is not final and CREATE/DELETE have their own
 * (anonymous) runtime classes, so default typing treats it like a non-final class.
 */
public enum Operation {
  CREATE {
    @Override
    public String verb() {
      return "create";
    }
  },
  DELETE {
    @Override
    public String verb() {
      return "delete";
    }
  },
  NOOP;

  public String verb() {
    return "none";
  }
}
