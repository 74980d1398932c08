// Words of the status page in zh-CN (first) and English. The language follows the
// browser's (navigator.language), a ?lang=zh|en in the address, or the switch in the header
// (remembered in localStorage).
"use strict";

const WORDS = {
  zh: {
    title: "排放连续监测状态", switchTo: "English", loading: "加载中…",
    stacks: "烟囱总览", devices: "设备",
    overviewNote: "排放口最新值：污染物为折算值（基准氧含量，标态干基），与排放限值比较（折算值 / 限值）；无折算值时显示实测值并注明。", sinks: "转发与上传", audit: "参数变更记录",
    stack: "烟囱", device: "设备", source: "来源", state: "状态", lastSeen: "最近数据", polls: "次数",
    errors: "错误", lastError: "最近错误", filter: "搜索设备或烟囱…", all: "全部",
    connected: "在线", down: "离线", waiting: "等待", devicesUp: (up, n) => `${up}/${n} 台设备在线`,
    stackCount: n => `${n} 个烟囱`, committed: n => `本次运行已存储 ${n} 条记录`,
    updated: "更新于", unreachable: "无法连接守护进程：",
    shown: (n, total) => `显示 ${n} / ${total} 台`,
    limit: "限值", flag: "标记", value: "数值", unit: "单位", channel: "通道", quantity: "参数",
    time: "时间", note: "说明", kind: "数值类型", rate: "排放速率 (kg/h)",
    kinds: { corrected: "折算值（基准氧含量）", measured: "实测值（标态干基）", raw: "原始值" },
    kindsShort: { corrected: "折算", measured: "实测", raw: "原始" },
    noValue: "无数值", noReadings: "尚无数据", open: "详情", close: "返回总览",
    hourMean: "本小时均值", hourMinutes: "有效分钟", completeness: "今日数据完整率",
    exceedances: "超标记录（近 7 天）", gaps: "数据缺失（近 24 小时）", none: "无",
    from: "开始", to: "结束", ongoing: "持续中",
    charts: "趋势图", range: "时间范围", ranges: { hour: "近 1 小时（原始数据）", day: "近 1 天（分钟数据）", week: "近 7 天（小时数据）" },
    noChartValues: "该时段无数据", chartUnavailable: "图表不可用：", now: "现在",
    sink: "名称", lastAck: "平台最近应答", backlog: "待发送记录", lag: "滞后 (秒)", mqtt: "MQTT 数据源", messages: "消息", readings: "读数",
    refused: "拒收", stalled: "停滞", noSinks: "未配置转发或上传",
    auditCols: { ts: "时间", source: "来源", how: "方式", item: "参数", old: "原值", new: "新值", file: "文件", checksum: "校验和" },
    flags: { N: "正常", F: "停运", M: "维护", S: "手工输入/设定值", D: "故障", C: "校准", T: "超测定上限", B: "通讯异常" },
    flagLegend: "数据标记（HJ 212-2017）",
    deadLetters: "死信（拒收或无法送达的数据，最近 20 条）",
    deadLettersHint: "查看全部、重发或删除：cemsd dead-letters list | retry | drop",
    deadCols: { ts: "时间", source: "来源", reason: "原因", payload: "内容" },
    silentFor: (silence, how, every) => `${silence} 无数据（${how === "uploads" ? "上传" : "发布"}周期 ${every}）`,
    sources: { modbus: "Modbus 轮询", mqtt: "MQTT", hj212: "HJ 212 数采仪" },
    positions: { inlet: "脱硫入口", outlet: "排放口" },
  },
  en: {
    title: "CEMS status", switchTo: "中文", loading: "Loading…",
    stacks: "Stacks", devices: "Devices",
    overviewNote: "Latest values at each outlet: pollutants corrected to the reference O2 (standard conditions, dry), against the emission limit (corrected / limit); a measured value, where no corrected one exists, is marked as such.", sinks: "Forwarders and uplinks", audit: "Parameter changes",
    stack: "Stack", device: "Device", source: "Source", state: "State", lastSeen: "Last data", polls: "Polls",
    errors: "Errors", lastError: "Last error", filter: "Search device or stack…", all: "All",
    connected: "connected", down: "down", waiting: "waiting", devicesUp: (up, n) => `${up}/${n} devices connected`,
    stackCount: n => `${n} stacks`, committed: n => `${n} records committed this run`,
    updated: "updated", unreachable: "cannot reach the daemon: ",
    shown: (n, total) => `showing ${n} of ${total}`,
    limit: "Limit", flag: "Flag", value: "Value", unit: "Unit", channel: "Channel", quantity: "Quantity",
    time: "Time", note: "Note", kind: "Value shown", rate: "Emission rate (kg/h)",
    kinds: { corrected: "corrected (reference O2)", measured: "measured (standard, dry)", raw: "raw" },
    kindsShort: { corrected: "corrected", measured: "measured", raw: "raw" },
    noValue: "no value", noReadings: "no readings yet", open: "Details", close: "Back to overview",
    hourMean: "Hour-to-date mean", hourMinutes: "Valid minutes", completeness: "Data completeness today",
    exceedances: "Exceedances (last 7 days)", gaps: "Gaps (last 24 h)", none: "none",
    from: "From", to: "To", ongoing: "ongoing",
    charts: "Charts", range: "Range", ranges: { hour: "last hour (raw readings)", day: "last day (minutes)", week: "last 7 days (hours)" },
    noChartValues: "no values in this range", chartUnavailable: "chart unavailable: ", now: "now",
    sink: "Name", lastAck: "Last platform ack", backlog: "Backlog (records)", lag: "Lag (s)", mqtt: "MQTT sources", messages: "Messages", readings: "Readings",
    refused: "Refused", stalled: "Stalled", noSinks: "no forwarder or uplink configured",
    auditCols: { ts: "Time", source: "Source", how: "How", item: "Item", old: "Old", new: "New", file: "File", checksum: "Checksum" },
    flags: { N: "normal", F: "plant stopped", M: "maintenance", S: "manual input / set value", D: "fault", C: "calibration", T: "over the measuring range", B: "communication failure" },
    flagLegend: "Data flags (HJ 212-2017)",
    deadLetters: "Dead letters (refused or undeliverable, newest 20)",
    deadLettersHint: "to list all, send again or drop: cemsd dead-letters list | retry | drop",
    deadCols: { ts: "Time", source: "Source", reason: "Reason", payload: "Payload" },
    silentFor: (silence, how, every) => `no data for ${silence} (${how} every ${every})`,
    sources: { modbus: "Modbus poll", mqtt: "MQTT", hj212: "HJ 212 logger" },
    positions: { inlet: "FGD inlet", outlet: "outlet" },
  },
};

function chosenLanguage() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked === "zh" || asked === "en") return asked;
  const kept = localStorage.getItem("cemsd-lang");
  if (kept === "zh" || kept === "en") return kept;
  return (navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
}

let LANG = chosenLanguage();
let T = WORDS[LANG];

function setLanguage(lang) {
  LANG = lang;
  T = WORDS[lang];
  localStorage.setItem("cemsd-lang", lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}
