import { Badge } from "@mantine/core";
import type { Verdict } from "../api/client";

export function VerdictBadge({ verdict, size = "sm" }: { verdict: Verdict; size?: "xs" | "sm" | "md" | "lg" }) {
  return (
    <Badge color={verdict === "anomalous" ? "red.9" : "#237a35"} size={size} variant="filled" miw={62}>
      {verdict === "anomalous" ? "Defect" : "Pass"}
    </Badge>
  );
}
