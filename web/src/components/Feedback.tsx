import { Alert, type AlertProps } from "@mantine/core";

/** The outcome of an action, green or red, dismissed by its close button; nothing while there is none. Other
 * props (spacing, a test id) go to the alert. */
export function Feedback({
  msg,
  onClose,
  ...rest
}: { msg: { ok: boolean; text: string } | null; onClose: () => void; "data-testid"?: string } & Omit<AlertProps, "color" | "onClose">) {
  if (!msg) return null;
  return (
    <Alert color={msg.ok ? "green" : "red"} withCloseButton closeButtonLabel="Dismiss" onClose={onClose} {...rest}>
      {msg.text}
    </Alert>
  );
}
