"""Where a compiled step's memory traffic goes, read from its optimised HLO.

XLA's cost analysis (`compiled.cost_analysis()['bytes accessed']`) gives one
number. This module splits it over the top-level instructions of the compiled
program (the entry computation and loop bodies; a fusion counts as one
instruction: its operands plus its output) and groups them by the JAX
operation they came from, so that a change can be aimed at the largest
groups.

It also gives a second count, `sliced_bytes`: where a fusion reads an
operand only through static slices, of it or of a padded view of it (the
per-tap pieces of an im2col patch matrix or of its gradient), only the
sliced elements are counted. XLA's
count charges such a fusion the whole operand, so a matrix cut into nine
taps is charged nine times over; the second count is closer to what the
memory system moves.
"""

from __future__ import annotations

import collections
import dataclasses
import re

_ELEMENT_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 'f16': 2, 'bf16': 2, 's16': 2, 'u16': 2,
                  'f32': 4, 's32': 4, 'u32': 4, 'f64': 8, 's64': 8, 'u64': 8}
_ARRAY = re.compile(r'\b(' + '|'.join(_ELEMENT_BYTES) + r')\[([0-9,]*)\]')
_INSTRUCTION = re.compile(r'\s*(?:ROOT )?%([\w.\-]+) = (\(.*?\)|\S+) ([a-z][\w\-]*)\((.*)$')
# Instructions that move no data of their own.
_FREE = frozenset({'parameter', 'constant', 'get-tuple-element', 'tuple', 'bitcast', 'while',
                   'after-all', 'conditional', 'call'})


def shape_bytes(shape: str) -> int:
  """Bytes of an HLO shape string (a tuple counts all its arrays)."""
  total = 0
  for dtype, dims in _ARRAY.findall(shape):
    n = 1
    for d in filter(None, dims.split(',')):
      n *= int(d)
    total += n * _ELEMENT_BYTES[dtype]
  return total


@dataclasses.dataclass(frozen=True)
class Instruction:
  name: str
  shape: str
  opcode: str
  operands: tuple[str, ...]
  attributes: str


def _operands(rest: str) -> tuple[tuple[str, ...], str]:
  depth, end = 1, len(rest)
  for i, ch in enumerate(rest):
    depth += {'(': 1, ')': -1}.get(ch, 0)
    if depth == 0:
      end = i
      break
  return tuple(re.findall(r'%([\w.\-]+)', rest[:end])), rest[end + 1:]


def parse(hlo_text: str) -> tuple[str, dict[str, list[Instruction]]]:
  """(entry name, {computation: instructions}) of `compiled.as_text()`."""
  computations: dict[str, list[Instruction]] = {}
  entry, current = '', None
  for line in hlo_text.splitlines():
    if not line.startswith(' ') and line.rstrip().endswith('{'):
      head = re.match(r'^(ENTRY )?%?([\w.\-]+)', line)
      if head and not line.startswith('HloModule'):
        current = computations.setdefault(head.group(2), [])
        if head.group(1):
          entry = head.group(2)
        continue
    if line.startswith('}'):
      current = None
      continue
    if current is None:
      continue
    m = _INSTRUCTION.match(line)
    if m and m.group(3) == 'parameter':  # keep its number
      current.append(Instruction(m.group(1), m.group(2), 'parameter', (),
                                 m.group(4).split(')', 1)[0]))
    elif m:
      operands, attributes = _operands(m.group(4))
      current.append(Instruction(m.group(1), m.group(2), m.group(3), operands, attributes))
  return entry, computations


def _sliced_parameter_bytes(fused: list[Instruction]) -> dict[int, int]:
  """For each parameter of a fused computation read only through slices
  (bitcasts and pads looked through): the bytes of those slices."""
  users = collections.defaultdict(list)
  for ins in fused:
    for op in ins.operands:
      users[op].append(ins)

  def slice_bytes(name: str) -> int | None:
    total = 0
    for user in users[name]:
      if user.opcode == 'slice':
        total += shape_bytes(user.shape)
      elif (user.opcode in ('bitcast', 'pad') and user.operands[0] == name
            and (inner := slice_bytes(user.name)) is not None):
        total += inner  # a slice of a padded view reads at most its own size
      else:
        return None
    return total

  # A fusion whose result is a slice of an elementwise computation (the
  # per-tap views of a loss gradient, say) reads only the sliced part of
  # every operand as large as the sliced array.
  root = fused[-1] if fused else None
  fraction, sliced_size = 1.0, 0
  by_name = {ins.name: ins for ins in fused}
  if root is not None and root.opcode == 'slice' and root.operands[0] in by_name:
    sliced_size = shape_bytes(by_name[root.operands[0]].shape)
    fraction = shape_bytes(root.shape) / max(sliced_size, 1)
  out = {}
  for ins in fused:
    if ins.opcode != 'parameter':
      continue
    full = shape_bytes(ins.shape)
    if (sliced := slice_bytes(ins.name)):
      out[int(ins.attributes)] = min(sliced, full)
    elif fraction < 1.0 and full * 2 >= sliced_size:
      out[int(ins.attributes)] = int(full * fraction)
  return out


@dataclasses.dataclass
class Traffic:
  xla_bytes: int  # the cost-analysis convention: every operand whole
  sliced_bytes: int  # operands read only through slices count those slices
  by_operation: list[tuple[str, int, int, int]]  # (group, instructions, xla, sliced)


def traffic(hlo_text: str, top: int = 25) -> Traffic:
  """Bytes read and written by the top-level instructions of a compiled
  program, overall and grouped by (opcode, JAX operation, forward/backward)."""
  entry, computations = parse(hlo_text)
  sizes = {ins.name: shape_bytes(ins.shape)
           for body in computations.values() for ins in body}
  sliced_params = {}
  top_level = [entry]
  for body in computations.values():
    for ins in body:
      top_level += re.findall(r'(?:body|condition)=%([\w.\-]+)', ins.attributes)
  groups: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
  xla_total = sliced_total = 0
  for name in dict.fromkeys(top_level):
    for ins in computations.get(name, []):
      if ins.opcode in _FREE:
        continue
      operand_bytes = [sizes.get(op, 0) for op in ins.operands]
      sliced = list(operand_bytes)
      called = re.search(r'calls=%([\w.\-]+)', ins.attributes)
      if ins.opcode == 'fusion' and called:
        fused = called.group(1)
        if fused not in sliced_params:
          sliced_params[fused] = _sliced_parameter_bytes(computations.get(fused, []))
        for index, b in sliced_params[fused].items():
          if index < len(sliced):
            sliced[index] = b
      out = sizes[ins.name]
      xla, cut = out + sum(operand_bytes), out + sum(sliced)
      op_name = re.search(r'op_name="([^"]*)"', ins.attributes)
      path = op_name.group(1).split('/')[1:] if op_name else []
      direction = 'backward' if path and path[0].startswith('transpose') else 'forward'
      operation = re.sub(r'\[.*', '', path[-1]) if path else ''
      key = f'{ins.opcode} {operation} ({direction})'
      groups[key][0] += 1
      groups[key][1] += xla
      groups[key][2] += cut
      xla_total += xla
      sliced_total += cut
  ordered = sorted(groups.items(), key=lambda kv: -kv[1][1])[:top]
  return Traffic(xla_total, sliced_total, [(k, n, x, s) for k, (n, x, s) in ordered])


def markdown(t: Traffic) -> str:
  lines = [f'XLA convention: {t.xla_bytes / 1e9:.1f} GB; counting only the slices a fusion '
           f'reads: {t.sliced_bytes / 1e9:.1f} GB.', '',
           '| instructions | count | GB (XLA) | GB (slices) |', '|---|---|---|---|']
  for key, n, xla, cut in t.by_operation:
    lines.append(f'| {key} | {n} | {xla / 1e9:.2f} | {cut / 1e9:.2f} |')
  return '\n'.join(lines) + '\n'
