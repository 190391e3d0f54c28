package conformance.model;

/** A subclass: asked for as Request, stored under its own class name. */
public class AdminRequest extends Request {
  private String reason;

  public AdminRequest() {}

  public String getReason() {
    return reason;
  }

  public void setReason(String reason) {
    this.reason = reason;
  }
}
